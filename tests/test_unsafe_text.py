"""One rule for unsafe characters (`bot.text`): every renderer drops exactly what the command
parser refuses, and keeps the rest of the text."""

from __future__ import annotations

import sys
import unicodedata
from collections.abc import Callable, Iterator

import pytest

from adapters import console
from adapters.discord import render as discord_render
from adapters.slack import render as slack_render
from bot.commands.parser import UsageError, parse
from bot.messages import Link, Message, PaperCard, Visibility
from bot.text import is_unsafe, strip_unsafe

# Right-to-left override, lone surrogate, terminal colour escape, NUL, left-to-right isolate.
UNSAFE = ("\u202e", "\ud800", "\x1b", "\x00", "\u2066")
HOSTILE = "gnp\u202e.exe \ud800\x1b[31mred\x00 \u2066isolated\u2069 👩\u200d💻"
# What stays visible of it: the words, the emoji with its zero-width joiner.
VISIBLE = ("gnp", "exe", "31mred", "isolated", "👩\u200d💻")
BIDI_CONTROLS = {0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)}


def hostile_message() -> Message:
    card = PaperCard(
        paper_id="2405.15738",
        title=HOSTILE,
        url="https://huggingface.co/papers/2405.15738",
        authors=(HOSTILE,),
        summary=f"{HOSTILE} " * 5,
        links=(Link(HOSTILE, "https://github.com/x/y"),),
    )
    return Message(
        text=HOSTILE, lines=(HOSTILE,), cards=(card,), note=HOSTILE, visibility=Visibility.PUBLIC
    )


def strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from strings(item)


def slack_output(message: Message) -> str:
    rendered = slack_render.blocks(message)
    return "\n".join([*strings(rendered), slack_render.fallback_text(message)])


def discord_output(message: Message) -> str:
    rendered = discord_render.render(message)
    return "\n".join([rendered.content, *strings([e.to_dict() for e in rendered.embeds])])


def console_output(message: Message) -> str:
    return "\n".join(console.render(message))


@pytest.mark.parametrize("output", [slack_output, discord_output, console_output])
def test_every_renderer_drops_the_unsafe_characters_and_keeps_the_rest(
    output: Callable[[Message], str],
) -> None:
    shown = output(hostile_message())
    for ch in UNSAFE:
        assert ch not in shown, (hex(ord(ch)), shown)
    assert not any(is_unsafe(ch) for ch in shown), shown
    for part in VISIBLE:
        assert part in shown, (part, shown)


def test_the_parser_refuses_the_same_string() -> None:
    with pytest.raises(UsageError, match="control characters"):
        parse(f"topic {HOSTILE}")
    for ch in UNSAFE:
        with pytest.raises(UsageError, match="control characters"):
            parse(f"topic speculative{ch}decoding")


@pytest.mark.parametrize("ch", ["\u200d", "\u200c", "\u200b", "\ufeff", "\u00ad", "\u2028"])
def test_the_parser_does_not_call_other_invisible_characters_unsafe(ch: str) -> None:
    try:
        parse(f"follow speculative{ch}decoding")
    except UsageError as error:
        assert "control characters" not in str(error)


def test_the_rule_is_cc_but_newline_and_tab_cs_and_the_bidi_controls() -> None:
    wrong = [
        hex(code)
        for code in range(sys.maxunicode + 1)
        if is_unsafe(chr(code))
        != (
            code in BIDI_CONTROLS
            or (unicodedata.category(chr(code)) in ("Cc", "Cs") and chr(code) not in "\n\t")
        )
    ]
    assert wrong == []


def test_strip_unsafe_evens_out_whitespace_and_keeps_newlines() -> None:
    assert strip_unsafe("a\tb\u2028c\u2029d\r\ne\u0085f\n") == "a b\nc\nd\nef\n"
    assert strip_unsafe(HOSTILE) == "gnp.exe [31mred isolated 👩\u200d💻"
