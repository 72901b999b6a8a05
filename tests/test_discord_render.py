"""Discord rendering: escaping of hostile text, Discord's limits, embeds, files, send kwargs."""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import replace
from datetime import date

import discord
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.discord.render import (
    DEMO_FOOTER,
    EMBED_COLOUR,
    FALLBACK_CONTENT,
    MAX_FILE_BYTES,
    DiscordMessage,
    escape,
    render,
    safe_filename,
    spread,
)
from bot.cards import DEMO_NOTE
from bot.commands.papers import HELP_LINES
from bot.delivery.resumable import spread_papers
from bot.events import ChannelRef, MessageRef, Scope
from bot.messages import Attachment, Link, Message, PaperCard, Visibility
from tests.long_papers import long_summary, long_title

HF = "https://huggingface.co/papers"
ZWSP = "\u200b"
HOSTILE = (
    "@everyone",
    "@here",
    "<@123>",
    "<@!123>",
    "<@&456>",
    "<#789>",
    "</papers:1>",
    "<t:1700000000:R>",
    "<:blob:123>",
    "<https://evil.example>",
    "[click](http://evil.example)",
    "[a](http://x) [b](http://evil)",
    "https://x.example/[a](https://evil)",
    "||spoiler||",
    "**bold** __u__ *it* _it_ ~~s~~",
    "`code` ```block```",
    "> quote",
    ">>> quote",
    "# heading",
    "-# subtext",
    "- item",
    "* item",
    "1. item",
    "\\",
    "\x00\x07\x1b[31m\x7f\r",
    "\u202eevil\u202c",
    "\ud800",
    "\u2028# after a line separator",
)
EVIL = " ".join(HOSTILE)
# Everything Discord can read as markup, with escapes, code spans and bare URLs taken out.
ESCAPE_OR_CODE = re.compile(r"\\.|`[^`]*`", re.DOTALL)
BARE_URL = re.compile(r"https?://[\w\-.~:/?#@!$&'+,;=%]+", re.IGNORECASE)
RAW_MENTION = re.compile(r"@(everyone|here)|<@[!&]?\d+>|<#\d+>")
LINE_MARKER = re.compile(r"^[^\S\n]*(?:[#>*+-]|\d+\.(?:\s|$))", re.MULTILINE)
# Our own masked links: an escaped label (no raw brackets) and an encoded http(s) URL.
OUR_LINK = re.compile(r"\[(?:\\.|[^\\\[\]])+\]\(https?://[^\s()<>\[\]\\]+\)")


def live_markup(text: str) -> str:
    """What Discord would parse as markup: escapes and code spans removed, then bare URLs."""
    return BARE_URL.sub("", ESCAPE_OR_CODE.sub("", text))


def assert_inert(text: str) -> None:
    """No mention syntax anywhere (even raw), no live markdown, no control characters."""
    assert not RAW_MENTION.search(text), text
    live = live_markup(text)
    for char in "*_~|`[]<>":
        assert char not in live, (char, text)
    assert not LINE_MARKER.search(ESCAPE_OR_CODE.sub("x", text)), text
    assert not any(ord(ch) < 32 and ch != "\n" for ch in text), repr(text)
    assert not any("\ud800" <= ch <= "\udfff" or "\u202a" <= ch <= "\u202e" for ch in text)


def assert_no_odd_backslash_at_end(text: str) -> None:
    """A cut never leaves a lone backslash that would escape our ellipsis or a newline."""
    body = text.removesuffix("…")
    trailing = len(body) - len(body.rstrip("\\"))
    assert trailing % 2 == 0, text


def card(n: int = 1, **changes: object) -> PaperCard:
    arxiv = f"2405.{15738 + n}"
    fields: dict[str, object] = {
        "paper_id": arxiv,
        "title": "ConvLLaVA: Hierarchical Backbones as Visual Encoder for Multimodal Models",
        "url": f"{HF}/{arxiv}",
        "authors": ("Chunjiang Ge", "Sijie Cheng", "Ziming Wang", "Jiale Yuan", "Yuan Gao"),
        "upvotes": 64,
        "published": date(2024, 5, 24),
        "summary": "ConvLLaVA uses a hierarchical ConvNeXt backbone to compress high-resolution "
        "images, cutting visual tokens while keeping accuracy.",
        "links": (
            Link("arXiv", f"https://arxiv.org/abs/{arxiv}"),
            Link("PDF", f"https://arxiv.org/pdf/{arxiv}"),
            Link("Code", "https://github.com/alibaba/conv-llava"),
        ),
        "thumbnail": f"https://cdn-thumbnails.huggingface.co/social-thumbnails/papers/{arxiv}.png",
    }
    fields.update(changes)
    return PaperCard(**fields)  # type: ignore[arg-type]


def field(embed: discord.Embed, name: str) -> str:
    (value,) = [f.value for f in embed.fields if f.name == name]
    assert value is not None
    return value


def embed_texts(embed: discord.Embed) -> list[str]:
    """Embed text Discord parses as markdown (footers don't render markdown)."""
    texts = [embed.title or "", embed.description or ""]
    texts += [OUR_LINK.sub("", f.value or "") for f in embed.fields]
    return texts


def assert_within_limits(rendered: DiscordMessage) -> None:
    assert 0 < len(rendered.content) <= 2000 or rendered.embeds or rendered.file
    assert len(rendered.embeds) <= 10
    for embed in rendered.embeds:
        assert 0 < len(embed.title or "") <= 256
        assert len(embed.description or "") <= 4096
        assert len(embed.fields) <= 25
        for f in embed.fields:
            assert 0 < len(f.name or "") <= 256
            assert 0 < len(f.value or "") <= 1024
        assert len(embed.footer.text or "") <= 2048
    assert sum(len(embed) for embed in rendered.embeds) <= 6000


# --- escape -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("@everyone and @here", f"@{ZWSP}everyone and @{ZWSP}here"),
        ("<@123> <@!123>", f"\\<{ZWSP}@123\\> \\<{ZWSP}@!123\\>"),
        ("<@&456>", f"\\<{ZWSP}@&456\\>"),
        ("<#789>", f"\\<{ZWSP}#789\\>"),
        ("@12345678901234567", f"@{ZWSP}12345678901234567"),
        ("</papers:1>", "\\</papers:1\\>"),
        ("<t:1700000000:R>", "\\<t:1700000000:R\\>"),
        ("<:blob:123>", "\\<:blob:123\\>"),
        ("[click](http://evil.example)", "\\[click\\](http://evil.example)"),
        ("[a](http://x) [b](http://evil)", "\\[a\\](http://x) \\[b\\](http://evil)"),
        ("||spoiler||", "\\|\\|spoiler\\|\\|"),
        ("**b** __u__ *i* _i_ ~~s~~", "\\*\\*b\\*\\* \\_\\_u\\_\\_ \\*i\\* \\_i\\_ \\~\\~s\\~\\~"),
        ("`code` ```x```", "\\`code\\` \\`\\`\\`x\\`\\`\\`"),
        ("a\\b", "a\\\\b"),
        ("> quote\n>>> all", "\\> quote\n\\>\\>\\> all"),
        ("# h1\n## h2\n-# small", "\\# h1\n\\## h2\n\\-# small"),
        ("- a\n  - b\n+ c\n* d", "\\- a\n  \\- b\n\\+ c\n\\* d"),
        ("1. one\n 10. ten\n2024.05 stays", "1\\. one\n 10\\. ten\n2024.05 stays"),
        ("C# and 3.5 - fine", "C# and 3.5 - fine"),  # mid-line markers are left alone
    ],
)
def test_escape_makes_markup_literal(text: str, expected: str) -> None:
    assert escape(text) == expected
    assert_inert(escape(text))


def test_escape_covers_what_discord_utils_helpers_miss() -> None:
    # escape_markdown escapes only the first masked link of a line, and spares "URLs".
    assert "[b](http://evil)" in discord.utils.escape_markdown("[a](x) [b](http://evil)")
    assert "[b](http://evil)" not in escape("[a](x) [b](http://evil)")
    nested = "https://x.example/[a](https://evil)"
    assert "[a](" in discord.utils.escape_markdown(nested)
    assert escape(nested) == "https://x.example/\\[a\\](https://evil)"
    # escape_mentions leaves short ids, roles and channels alone.
    assert discord.utils.escape_mentions("<@&456> <#789>") == "<@&456> <#789>"
    assert not RAW_MENTION.search(escape("<@&456> <#789>"))


def test_escape_keeps_bare_urls_so_they_still_link() -> None:
    text = "Code: https://github.com/foo_bar/baz~x_y. Thanks"
    assert escape(text) == "Code: https://github.com/foo_bar/baz~x_y. Thanks"
    assert escape("_https://x.example/a_") == "\\_https://x.example/a_"


def test_escape_drops_control_bidi_and_surrogates_but_keeps_newlines() -> None:
    assert escape("a\x00b\x1b[31mc\x7fd\r\ne\tf\u202eg\u2066h\ud800i") == "ab\\[31mcd\ne fghi"
    assert escape("x\u2028# y") == "x\n\\# y"  # a line separator starts a line too


# --- content ------------------------------------------------------------------------------


def test_reply_content_is_heading_then_lines_with_code_kept() -> None:
    message = Message(
        text="You follow 2 topic(s):",
        lines=("llm_agents", "Turn on your DM digest with `/papers digest daily 08:00`."),
    )
    rendered = render(message)
    assert rendered.content == (
        "You follow 2 topic(s):\nllm\\_agents\n"
        "Turn on your DM digest with `/papers digest daily 08:00`."
    )
    assert rendered.embeds == [] and rendered.file is None


def test_help_lines_keep_every_code_span_verbatim() -> None:
    content = render(Message(text="paperboy help", lines=HELP_LINES)).content
    assert "`/papers topic <words>`" in content  # nothing escaped inside code
    assert "`/papers digest daily HH:MM [timezone]`" in content
    assert content.count("`") == sum(line.count("`") for line in HELP_LINES)
    assert_inert(content)


def test_unbalanced_backtick_is_dropped_and_hostile_code_is_defused() -> None:
    assert render(Message(text="a `b` c `d *e*")).content == "a `b` c d \\*e\\*"
    content = render(Message(text="Run `/papers follow <@123> @everyone`")).content
    assert content == f"Run `/papers follow <{ZWSP}@123> @{ZWSP}everyone`"
    assert render(Message(text="`a``b` ``")).content == f"`a`{ZWSP}`b`"  # no `` delimiter


def test_hostile_heading_and_lines_are_inert() -> None:
    content = render(Message(text=f"Papers on {EVIL}", lines=(EVIL, f"> {EVIL}"))).content
    assert_inert(content)
    assert "\\[click\\](http://evil.example)" in content  # shown, not silently dropped


def test_content_is_cut_to_2000_between_escapes() -> None:
    for text in ("*" * 3000, "a" + "*" * 3000, "<@1>" * 1000, "`" + "x" * 3000 + "`"):
        content = render(Message(text=text)).content
        assert len(content) <= 2000 and content.endswith(("…", "…`")), text[:10]
        assert_no_odd_backslash_at_end(content)
    code = render(Message(text="`" + "x" * 3000 + "`")).content
    assert code.startswith("`x") and code.endswith("x…`") and code.count("`") == 2


def test_empty_message_still_has_content() -> None:
    assert render(Message(text="")).content == FALLBACK_CONTENT
    assert render(Message(text=" \n\x00\u202e", lines=("", "  "))).content == FALLBACK_CONTENT


def test_note_without_cards_is_a_subtext_line() -> None:
    message = Message(text="Trending papers", note="Demo <data> & `code`\n# more")
    assert render(message).content == "Trending papers\n-# Demo \\<data\\> & `code` \\# more"


# --- embeds -------------------------------------------------------------------------------


def test_card_becomes_an_embed_with_fields_links_and_thumbnail() -> None:
    rendered = render(Message(text="Trending papers", cards=(card(),), shareable=True))
    (embed,) = rendered.embeds
    assert rendered.content == "Trending papers"
    assert embed.to_dict() == {
        "type": "rich",
        "title": "ConvLLaVA: Hierarchical Backbones as Visual Encoder for Multimodal Models",
        "url": f"{HF}/2405.15739",
        "color": EMBED_COLOUR.value,
        "description": "ConvLLaVA uses a hierarchical ConvNeXt backbone to compress "
        "high-resolution images, cutting visual tokens while keeping accuracy.",
        "fields": [
            {
                "name": "Authors",
                "value": "Chunjiang Ge, Sijie Cheng, Ziming Wang +2 more",
                "inline": True,
            },
            {"name": "Upvotes", "value": "64", "inline": True},
            {"name": "Published", "value": "2024-05-24", "inline": True},
            {
                "name": "Links",
                "value": "[arXiv](https://arxiv.org/abs/2405.15739) · "
                "[PDF](https://arxiv.org/pdf/2405.15739) · "
                "[Code](https://github.com/alibaba/conv-llava)",
                "inline": False,
            },
        ],
        "thumbnail": {
            "url": "https://cdn-thumbnails.huggingface.co/social-thumbnails/papers/2405.15739.png"
        },
        "flags": 0,
    }


def test_lone_paper_post_is_just_its_embed() -> None:
    rendered = render(Message(text="", cards=(card(),), visibility=Visibility.PUBLIC))
    assert rendered.content == "" and len(rendered.embeds) == 1
    assert "content" not in rendered.send_kwargs()


def test_demo_cards_say_so_and_the_note_is_the_last_footer() -> None:
    demo = PaperCard(
        paper_id="demo-001",
        title="A demo paper",
        url=f"{HF}?q=A+demo+paper",
        summary="Offline sample.",
        is_demo=True,
    )
    other = PaperCard(paper_id="demo-002", title="B", url=f"{HF}?q=B", is_demo=True)
    rendered = render(Message(text="Demo", cards=(demo, other), note=DEMO_NOTE))
    first, last = rendered.embeds
    assert first.footer.text == DEMO_FOOTER
    assert last.footer.text == f"{DEMO_FOOTER} · {DEMO_NOTE}"
    assert [f.name for f in first.fields] == []  # no authors, upvotes, date or links
    assert first.url == f"{HF}?q=A+demo+paper"
    assert "-#" not in rendered.content  # the note is not repeated in the content


def test_footer_is_plain_text_without_code_marks() -> None:
    rendered = render(Message(text="x", cards=(card(),), note="Use `/papers saved` *now*\n"))
    assert rendered.embeds[0].footer.text == "Use /papers saved *now*"  # footers show it as is


def test_hostile_card_text_is_inert_everywhere() -> None:
    evil = card(
        title=f"Title {EVIL}",
        authors=(f"Author {EVIL}", "<@999>", "@here", "C", "D"),
        summary=f"Summary {EVIL}",
        links=(Link(f"Code [{EVIL}]", "https://github.com/a/b?x=<@1>|y&z=(1) 2"),),
    )
    rendered = render(Message(text=EVIL, lines=(EVIL,), cards=(evil,), note=f"Note {EVIL}"))
    assert_inert(rendered.content)
    (embed,) = rendered.embeds
    for text in embed_texts(embed):
        assert_inert(text)
    links = field(embed, "Links")
    assert OUR_LINK.fullmatch(links), links  # one masked link, nothing else
    assert links.endswith("(https://github.com/a/b?x=%3C@1%3E%7Cy&z=%281%29%202)")
    footer = embed.footer.text or ""
    assert footer.startswith("Note @\u200beveryone @\u200bhere <\u200b@123>")  # plain text
    assert not RAW_MENTION.search(footer)


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "ftp://x.example/",
        "//x.example",
        "",
        "https://",
        "https://user:pw@evil.example/",
        "https://<@1>/",
        "http://[::1",
        "https://x.example:99999/",
        "https://" + "a" * 3000 + ".example/",
    ],
)
def test_bad_urls_are_left_out(url: str) -> None:
    bad = card(url=url, thumbnail=url, links=(Link("Evil", url), Link("PDF", "https://a.example")))
    (embed,) = render(Message(text="", cards=(bad,))).embeds
    assert embed.url is None
    assert embed.thumbnail.url is None
    assert field(embed, "Links") == "[PDF](https://a.example)"


def test_link_labels_cannot_break_the_masked_link() -> None:
    odd = card(links=(Link("a] [b](https://evil", "https://ok.example/x y"),))
    (embed,) = render(Message(text="", cards=(odd,))).embeds
    assert field(embed, "Links") == "[a) (b)(https://evil](https://ok.example/x%20y)"


def test_huge_title_summary_and_author_list_are_cut() -> None:
    big = card(
        title="*" * 1000,
        summary="_" * 10000,
        authors=tuple(f"Author {n} " + "N" * 200 for n in range(500)),
    )
    rendered = render(Message(text="x", cards=(big,)))
    assert_within_limits(rendered)
    (embed,) = rendered.embeds
    assert embed.title is not None and embed.title.endswith("\\*…") and len(embed.title) <= 256
    assert embed.description is not None and len(embed.description) > 1000
    assert_no_odd_backslash_at_end(embed.description)
    assert field(embed, "Authors").endswith("… +497 more")


def test_more_than_ten_cards_list_the_rest_by_title() -> None:
    cards = tuple(card(n, title=f"Paper *{n}*") for n in range(1, 16))
    rendered = render(Message(text="Your saved papers (15)", cards=cards))
    assert_within_limits(rendered)
    assert [e.title for e in rendered.embeds] == [f"Paper \\*{n}\\*" for n in range(1, 11)]
    assert rendered.content.split("\n") == [
        "Your saved papers (15)",
        "Plus 5 more papers not shown below:",
        *(f"• Paper \\*{n}\\*" for n in range(11, 16)),
    ]


def test_ten_long_cards_fit_6000_by_cutting_summaries_first() -> None:
    cards = tuple(card(n, summary="word " * 500) for n in range(1, 11))
    rendered = render(Message(text="Trending", cards=cards, note=DEMO_NOTE))
    assert_within_limits(rendered)
    assert len(rendered.embeds) == 10  # every card kept, with its fields
    assert all(len(e.fields) == 4 for e in rendered.embeds)
    descriptions = [e.description or "" for e in rendered.embeds]
    assert all(d.endswith("…") for d in descriptions)
    assert max(map(len, descriptions)) - min(map(len, descriptions)) <= 1  # a fair share
    assert rendered.embeds[-1].footer.text == DEMO_NOTE
    assert sum(len(e) for e in rendered.embeds) > 5900  # the budget is used, not wasted


def test_a_cut_summary_ends_between_words() -> None:
    words = "summarised " * 500
    cards = tuple(card(n, summary=words) for n in range(1, 11))
    rendered = render(Message(text="Trending", cards=cards))
    assert_within_limits(rendered)
    for embed in rendered.embeds:
        description = embed.description or ""
        assert description.endswith("summarised…"), description[-30:]
    # A single word longer than the slack allows is cut inside, still with the ellipsis.
    long_word = render(Message(text="x", cards=(card(1, summary="x" * 5000),)))
    assert (long_word.embeds[0].description or "").endswith("x…")


def test_cards_that_cannot_fit_6000_even_without_summaries_move_to_the_content() -> None:
    cards = tuple(
        card(
            n,
            title="T" * 1000,
            authors=tuple("N" * 500 for _ in range(50)),
            links=tuple(Link("L" * 200, f"https://x.example/{n}/{'p' * 300}") for _ in range(4)),
        )
        for n in range(1, 11)
    )
    rendered = render(Message(text="Lots", cards=cards, note="note " * 1000))
    assert_within_limits(rendered)
    shown = len(rendered.embeds)
    assert 0 < shown < 10
    assert f"Plus {10 - shown} more papers not shown below:" in rendered.content
    assert (rendered.embeds[-1].footer.text or "").startswith("note note")  # note moved along
    assert all(e.footer.text is None for e in rendered.embeds[:-1])


# --- spread over messages -----------------------------------------------------------------


def long_card(n: int) -> PaperCard:
    """A card as a paper of the archive with the longest texts makes it."""
    return card(
        n,
        title=long_title(n),
        summary=long_summary(n),
        authors=tuple(f"Author Number{k} Lastname" for k in range(8)),
        links=(
            Link("arXiv", f"https://arxiv.org/abs/2605.{20100 + n}"),
            Link("PDF", f"https://arxiv.org/pdf/2605.{20100 + n}"),
            Link("Code", f"https://github.com/speech-lab/adaptive-lookahead-{n}"),
            Link("Project page", f"https://speech-lab.github.io/adaptive-lookahead-{n}/"),
        ),
    )


def whole_length(one: PaperCard) -> int:
    """Characters of the card's embed with nothing cut (for a card that fits a message)."""
    return sum(len(embed) for embed in render(Message(text="", cards=(one,))).embeds)


def test_ten_long_papers_spread_over_messages_with_no_summary_cut() -> None:
    cards = tuple(long_card(n) for n in range(1, 11))
    assert sum(map(whole_length, cards)) > 6000  # one message would have to cut
    heading = "Your paperboy digest: 10 new papers on speech"
    message = Message(text=heading, cards=cards, note=DEMO_NOTE, visibility=Visibility.PUBLIC)
    pieces = spread(message)
    assert len(pieces) > 1
    assert [c for piece in pieces for c in piece.cards] == list(cards)  # each once, in order
    rendered = [render(piece) for piece in pieces]
    for one in rendered:
        assert_within_limits(one)
        for embed in one.embeds:  # as discord.py sends it, and Discord counts it
            assert len(discord.Embed.from_dict(embed.to_dict())) == len(embed)
    descriptions = [embed.description for one in rendered for embed in one.embeds]
    assert descriptions == [escape(c.summary or "") for c in cards]  # every summary whole
    assert rendered[0].content == heading and not any(one.content for one in rendered[1:])
    footers = [embed.footer.text for one in rendered for embed in one.embeds]
    assert footers == [None] * 9 + [DEMO_NOTE]  # the note once, at the very end
    for before, after in itertools.pairwise(pieces):  # as few messages as hold them whole
        joined = (*before.cards, after.cards[0])
        assert len(joined) > 10 or sum(map(whole_length, joined)) > 6000


def test_a_message_that_fits_is_not_spread() -> None:
    message = Message(text="Trending", cards=tuple(card(n) for n in range(1, 11)), note="n")
    assert spread(message) == [message]


def test_only_a_card_too_big_for_a_message_alone_is_cut() -> None:
    huge = card(
        5,
        title="T" * 300,
        summary="word " * 1000,
        authors=tuple("N" * 200 for _ in range(5)),
        links=tuple(Link("L" * 60, f"https://x.example/{k}/{'p' * 200}") for k in range(4)),
    )
    cards = (long_card(1), long_card(2), huge, long_card(3))
    pieces = spread(Message(text="Digest", cards=cards))
    assert [piece.cards for piece in pieces] == [cards[:2], (huge,), cards[3:]]
    rendered = [render(piece) for piece in pieces]
    for one in rendered:
        assert_within_limits(one)
    assert (rendered[1].embeds[0].description or "").endswith("…")  # cut, and only it
    assert rendered[0].embeds[1].description == escape(long_summary(2))
    assert rendered[2].embeds[0].description == escape(long_summary(3))


def test_lines_beyond_2000_characters_spread_with_none_cut() -> None:
    topics = tuple(f"topic {n:02d} " + "x" * 70 for n in range(25))  # `following` at its most
    message = Message(text="You follow 25 topics:", lines=topics, note="A note")
    assert render(message).content.endswith("…")  # one message would have to cut
    pieces = spread(message)
    assert [line for piece in pieces for line in piece.lines] == list(topics)  # once, in order
    rendered = [render(piece) for piece in pieces]
    for one in rendered:
        assert_within_limits(one)
        assert "…" not in one.content
    assert len(pieces) == 2 and not pieces[1].text
    assert rendered[0].content.startswith("You follow 25 topics:\ntopic 00")
    assert [piece.note for piece in pieces] == [None, "A note"]  # the subtext line, at the end
    assert rendered[1].content.endswith("\n-# A note")
    one_more = replace(pieces[0], lines=(*pieces[0].lines, pieces[1].lines[0]))
    assert render(one_more).content.endswith("…")  # as few messages as hold them


def test_long_lines_come_first_then_the_cards_with_the_last_lines() -> None:
    lines = tuple(f"line {n:02d} " + "y" * 90 for n in range(30))
    cards = tuple(long_card(n) for n in range(1, 5))
    attachment = Attachment("saved.txt", "the file")
    message = Message(text="Saved", lines=lines, cards=cards, note=DEMO_NOTE, attachment=attachment)
    pieces = spread(message)
    assert [line for piece in pieces for line in piece.lines] == list(lines)
    assert [c for piece in pieces for c in piece.cards] == list(cards)
    with_cards = [index for index, piece in enumerate(pieces) if piece.cards]
    assert with_cards == list(range(with_cards[0], len(pieces))) and with_cards[0] > 0
    assert pieces[with_cards[0]].lines and not any(p.lines for p in pieces[with_cards[0] + 1 :])
    assert [piece.attachment for piece in pieces] == [attachment] + [None] * (len(pieces) - 1)
    rendered = [render(piece) for piece in pieces]
    for one in rendered:
        assert_within_limits(one)
        assert "…" not in one.content
    descriptions = [embed.description for one in rendered for embed in one.embeds]
    assert descriptions == [escape(c.summary or "") for c in cards]
    footers = [embed.footer.text for one in rendered for embed in one.embeds]
    assert footers == [None] * 3 + [DEMO_NOTE]
    assert rendered[0].file is not None and not any(one.file for one in rendered[1:])


def test_only_a_line_too_long_for_a_message_alone_is_cut() -> None:
    huge = "word " * 600
    pieces = spread(Message(text="Heading", lines=("before", huge, "after")))
    assert [piece.lines for piece in pieces] == [("before",), (huge,), ("after",)]
    contents = [render(piece).content for piece in pieces]
    assert contents[0] == "Heading\nbefore" and contents[2] == "after"
    assert len(contents[1]) <= 2000 and contents[1].endswith("word…")


def test_messages_of_lines_alone_get_keys_of_their_own() -> None:
    """A scheduled message spread with lines alone in several messages: each has a part
    name, so a delivery key and a nonce, of its own (the same one would make Discord answer
    the second with the first)."""

    class Spreading:
        spread = staticmethod(spread)

    async def record(ids: Sequence[int], ref: MessageRef) -> None:
        pass

    lines = tuple("z" * 150 for _ in range(30))
    message = Message(text="Weekly", lines=lines, cards=(long_card(1),))
    channel = ChannelRef(Scope("discord", "1"), "2")
    send = spread_papers(Spreading(), channel, "weekly", message, [11], (), record)  # type: ignore[arg-type]
    names = [part.name for part in send.parts]
    assert len(names) == 3 and len(set(names)) == 3


# --- attachment ---------------------------------------------------------------------------


def test_attachment_becomes_a_file() -> None:
    bib = "@misc{ge2024convllava,\n  title = {ConvLLaVA},\n}\n"
    message = Message(
        text="BibTeX for your 1 saved paper(s)",
        attachment=Attachment("paperboy-saved.bib", bib, "application/x-bibtex"),
    )
    rendered = render(message)
    assert rendered.file is not None
    assert rendered.file.filename == "paperboy-saved.bib"
    assert rendered.file.fp.read() == bib.encode()
    assert not rendered.file.spoiler
    assert rendered.send_kwargs()["file"] is rendered.file


def test_file_alone_needs_no_fallback_text() -> None:
    rendered = render(Message(text="", attachment=Attachment("a.bib", "x")))
    assert rendered.content == "" and rendered.file is not None


@pytest.mark.parametrize(
    ("name", "mime", "expected"),
    [
        ("paperboy-saved.bib", "application/x-bibtex", "paperboy-saved.bib"),
        ("Ré sumé <@1>.bib", "text/plain", "Re_sume_1.bib"),
        ("../../etc/passwd", "text/plain", "etc_passwd.txt"),
        ("SPOILER_x.bib", "text/plain", "x.bib"),  # would be blurred
        ("", "text/plain", "attachment.txt"),
        ("論文", "application/x-bibtex", "attachment.txt"),
        ("a" * 300 + ".bib", "text/plain", "a" * 96 + ".bib"),
    ],
)
def test_filenames_are_safe_ascii(name: str, mime: str, expected: str) -> None:
    assert safe_filename(name, mime) == expected


def test_oversized_attachment_is_not_sent_but_said() -> None:
    message = Message(text="BibTeX", attachment=Attachment("a.bib", "x" * (MAX_FILE_BYTES + 1)))
    rendered = render(message)
    assert rendered.file is None
    assert rendered.content == "BibTeX\na.bib is too large to attach (10,485,761 bytes)."


# --- send kwargs --------------------------------------------------------------------------


def test_send_kwargs_never_mention_and_omit_empty_parts() -> None:
    kwargs = render(Message(text="hi @everyone")).send_kwargs()
    assert set(kwargs) == {"content", "embeds", "allowed_mentions"}
    assert kwargs["allowed_mentions"].to_dict() == {"parse": []}
    assert kwargs["content"] == f"hi @{ZWSP}everyone"
    assert kwargs["embeds"] == []
    with_card = render(Message(text="", cards=(card(),))).send_kwargs()
    assert set(with_card) == {"embeds", "allowed_mentions"}
    assert len(with_card["embeds"]) == 1


# --- properties ---------------------------------------------------------------------------

hostile_text = st.lists(st.one_of(st.text(), st.sampled_from(HOSTILE)), max_size=8).map("".join)


@settings(max_examples=300, deadline=None)
@given(
    title=hostile_text,
    authors=st.lists(hostile_text, max_size=6),
    summary=st.none() | hostile_text,
    text=hostile_text,
    lines=st.lists(hostile_text, max_size=3),
    note=st.none() | hostile_text,
    label=hostile_text,
    url=hostile_text,
    count=st.integers(min_value=1, max_value=12),
    demo=st.booleans(),
)
def test_render_never_raises_respects_limits_and_stays_inert(
    title: str,
    authors: list[str],
    summary: str | None,
    text: str,
    lines: list[str],
    note: str | None,
    label: str,
    url: str,
    count: int,
    demo: bool,
) -> None:
    paper = card(
        title=title,
        authors=tuple(authors),
        summary=summary,
        links=(Link(label, url), Link(label, "https://x.example/" + url)),
        thumbnail=url,
        is_demo=demo,
    )
    message = Message(text=text, lines=tuple(lines), cards=(paper,) * count, note=note)
    rendered = render(message)
    assert_within_limits(rendered)
    assert 1 <= len(rendered.embeds) <= min(count, 10)
    assert_inert(rendered.content)
    for embed in rendered.embeds:
        assert embed.url == paper.url  # the card still links to its HF page
        for part in embed_texts(embed):
            assert_inert(part)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_escape_of_any_text_is_inert_and_keeps_line_breaks(text: str) -> None:
    escaped = escape(text)
    assert_inert(escaped)
    assert escaped.count("\n") == text.count("\n") + text.count("\u2028") + text.count("\u2029")
