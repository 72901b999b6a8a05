"""What counts as a word in a topic, and which words name no topic: the command parser's rule
for topics and the search's for its terms, so that what a user may follow is what the search
can find."""

from __future__ import annotations

import itertools
import unicodedata


def is_word_character(ch: str) -> bool:
    """A letter, digit or underscore (what `\\w` matches), or a combining mark: a Devanagari
    vowel sign, the dot of a lower-cased "İ"."""
    return ch.isalnum() or ch == "_" or unicodedata.category(ch).startswith("M")


# Words that name no topic (PostgreSQL's and Snowball's English stop list). They never decide
# whether a paper matches: "reasoning models that think too long" asks for papers holding
# "reasoning", "models", "think" and "long". PostgreSQL's `english` configuration drops them
# from a query itself; SQLite's FTS5 would require them.
STOPWORDS = frozenset(
    {
        "i", "me", "my", "myself", "we", "our", "ours", "ourselves", "you", "your", "yours",
        "yourself", "yourselves", "he", "him", "his", "himself", "she", "her", "hers",
        "herself", "it", "its", "itself", "they", "them", "their", "theirs", "themselves",
        "what", "which", "who", "whom", "this", "that", "these", "those", "am", "is", "are",
        "was", "were", "be", "been", "being", "have", "has", "had", "having", "do", "does",
        "did", "doing", "a", "an", "the", "and", "but", "if", "or", "because", "as", "until",
        "while", "of", "at", "by", "for", "with", "about", "against", "between", "into",
        "through", "during", "before", "after", "above", "below", "to", "from", "up", "down",
        "in", "out", "on", "off", "over", "under", "again", "further", "then", "once", "here",
        "there", "when", "where", "why", "how", "all", "any", "both", "each", "few", "more",
        "most", "other", "some", "such", "no", "nor", "not", "only", "own", "same", "so",
        "than", "too", "very", "s", "t", "can", "will", "just", "don", "should", "now"
    }
)  # fmt: skip


def search_terms(topic: str) -> list[str]:
    """The words of a topic a paper must hold: runs of letters, digits and their combining
    marks (as the full-text tokenizers read words) that are not stopwords. Query syntax never
    reaches the full-text engine; a topic of stopwords alone has no terms (the parser refuses
    one), as PostgreSQL finds nothing for it either."""
    runs = itertools.groupby(topic, key=is_word_character)
    words = ("".join(run) for is_word, run in runs if is_word)
    return [word for word in words if word.lower() not in STOPWORDS]
