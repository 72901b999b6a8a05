"""Daily Papers items in Hugging Face's shape with the longest texts its lists carry (in the
archive: titles up to about 170 characters, AI summaries up to about 1,300), so that ten of
them are more than one Discord message holds."""

from __future__ import annotations

from typing import Any

SENTENCES = (
    "Streaming speech recognition models trade accuracy for latency because they must commit "
    "to a transcript before the speaker has finished the sentence.",
    "We introduce a chunk-wise encoder with a learned look-ahead budget that decides, per "
    "frame, how much future audio it waits for before it emits a token.",
    "A lightweight controller trained with a latency-weighted objective keeps the budget "
    "small on easy segments and spends it on disfluencies, names and numbers.",
    "On LibriSpeech, Common Voice and a new set of multi-speaker meeting recordings the method "
    "lowers word error rate by 11 to 18 percent relative at the same median latency.",
    "It also reduces the 90th percentile latency by 240 milliseconds compared with a fixed "
    "look-ahead of equal accuracy, which matters most for live captioning.",
    "Ablations show that the gains come from the adaptive budget rather than from the larger "
    "encoder, and that the controller transfers across languages without retraining.",
    "We release the code, the trained checkpoints and the meeting recordings with their "
    "transcripts under a permissive license.",
)


def long_summary(n: int) -> str:
    """About 1,000 to 1,300 characters of plain prose (no markdown characters)."""
    sentences = SENTENCES[n % 2 :] if n % 3 else SENTENCES
    return f"Paper {n}: " + " ".join(sentences)


def long_title(n: int) -> str:
    return (
        f"Adaptive Look-Ahead for Streaming Speech Recognition {n}: Learning When to Wait for "
        "Future Audio Across Languages, Speakers and Noisy Meeting Recordings"
    )


def long_item(n: int, day: str) -> dict[str, Any]:
    """The daily list item of paper `n` (arXiv id 2605.2010n-like), listed on `day`."""
    arxiv = f"2605.{20100 + n}"
    authors = [
        {"_id": f"6a0c{n:04d}{k:016d}", "name": name, "hidden": False}
        for k, name in enumerate(
            ("Mira Okonkwo-Larsen", "Jonas Feldmann", "Priya Raghunathan", "Tomás Echeverría",
             "Hye-jin Park", "Oluwaseun Adeyemi", "Ingrid Solberg", "Rafael Montenegro"),
        )
    ]  # fmt: skip
    paper = {
        "id": arxiv,
        "authors": authors,
        "publishedAt": f"{day}T00:00:00.000Z",
        "submittedOnDailyAt": f"{day}T03:12:45.000Z",
        "title": long_title(n),
        "summary": long_summary(n) + " The abstract goes on in more detail.",
        "upvotes": 200 - n,
        "discussionId": f"6a0cd15c00000000002605{n:02d}",
        "githubRepo": f"https://github.com/speech-lab/adaptive-lookahead-{n}",
        "githubStars": 310,
        "projectPage": f"https://speech-lab.github.io/adaptive-lookahead-{n}/",
        "ai_summary": long_summary(n),
        "ai_keywords": ["streaming speech recognition", "look-ahead", "latency"],
    }
    return {
        "paper": paper,
        "publishedAt": paper["publishedAt"],
        "title": paper["title"],
        "summary": paper["summary"],
        "thumbnail": f"https://cdn-thumbnails.huggingface.co/social-thumbnails/papers/{arxiv}.png",
        "numComments": 3,
        "submittedBy": {"_id": "6a0b00000000000000000abc", "fullname": "Ada Reviewer",
                        "name": "adareviewer", "type": "user"},
        "isAuthorParticipating": False,
    }  # fmt: skip
