"""Search by meaning: papers and questions as vectors of one sentence model (`model.py`), the
stored vectors searched in memory (`index.py`), and the service the search and the digest use
(`meaning.py`). Optional: it needs the `semantic` extra (`pip install 'paperboy[semantic]'`);
without it, `load_semantic` answers None and search is lexical plus Hugging Face's.

Nothing here is imported by the rest of the core at run time except through `load_semantic`,
so the core runs without numpy and onnxruntime installed.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from bot.semantic.meaning import Semantic
    from storage.store import Store

log = logging.getLogger(__name__)

SemanticMode = Literal["auto", "on", "off"]


def load_semantic(mode: SemanticMode, store: Store) -> Semantic | None:
    """The service, or None when `mode` is off, or "auto" and the extra is missing. With
    "on", a missing extra raises `SemanticUnavailable`."""
    if mode == "off":
        return None
    from bot.semantic.model import SemanticUnavailable

    try:
        from bot.semantic.meaning import Semantic
        from bot.semantic.model import SentenceModel

        return Semantic(store, SentenceModel.load())
    except (ImportError, SemanticUnavailable) as exc:
        if mode == "on":
            raise SemanticUnavailable(str(exc)) from None
        log.info("Search by meaning is off: %s", exc)
        return None
