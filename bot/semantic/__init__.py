"""Search by meaning: papers and questions as vectors of one sentence model (`model.py`), the
stored vectors searched in memory (`index.py`), and the service the search and the digest use
(`meaning.py`). Optional: it needs the `semantic` extra (`pip install 'paperboy[semantic]'`);
without it, `load_semantic` raises `SemanticUnavailable` and search is lexical plus Hugging
Face's.

Nothing here is imported by the rest of the core at run time except through `load_semantic`,
so the core runs without numpy and onnxruntime installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.semantic.meaning import Semantic
    from storage.store import Store


def load_semantic(store: Store) -> Semantic:
    """The service over `store`, the model's files read at its first use;
    `SemanticUnavailable` names what is missing."""
    from bot.semantic.model import SentenceModel

    model = SentenceModel.deferred()  # first: it names what is missing, numpy included
    from bot.semantic.meaning import Semantic

    return Semantic(store, model)
