"""Paper sources: the Hugging Face papers API and the offline demo corpus."""
