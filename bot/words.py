"""What counts as a word in a topic: the command parser's rule for topics and the search's for
its terms, so that what a user may follow is what the search can find."""

from __future__ import annotations

import unicodedata


def is_word_character(ch: str) -> bool:
    """A letter, digit or underscore (what `\\w` matches), or a combining mark: a Devanagari
    vowel sign, the dot of a lower-cased "İ"."""
    return ch.isalnum() or ch == "_" or unicodedata.category(ch).startswith("M")
