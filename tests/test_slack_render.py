"""Slack Block Kit rendering: escaping of hostile text, Slack's limits, buttons and cards."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.slack.render import (
    SHARE_ACTION,
    blocks,
    escape,
    fallback_text,
    link,
)
from bot.messages import Attachment, Link, Message, PaperCard, Visibility

HF = "https://huggingface.co/papers"
HOSTILE = (
    "<!channel>",
    "<!here>",
    "<!everyone>",
    "<@U123>",
    "<#C123>",
    "<!subteam^S1|team>",
    "<https://evil.example|click>",
    "<http://evil.example>",
    "&lt;!channel&gt;",
    "a & b",
    "x | y",
    "*bold* _it_ ~s~ `code`",
    "\x00\x07\x1b[31m\x7f\r",
    "\u202eevil\u202c",
    "```",
    ">",
    "<",
    "|",
)
EVIL = " ".join(HOSTILE)
# Our own links: an HF paper page, then a label with no `<`, `>` or `|` in it.
OUR_LINK = re.compile(r"<https://huggingface\.co/papers[^<>|\s]*\|[^<>|]*>")
ENTITY = re.compile(r"&(?:amp|lt|gt);")


def strings(value: object, key: str = "") -> Iterator[tuple[str, str]]:
    """Every string in a JSON-like structure with the key it sits under, keys included."""
    if isinstance(value, str):
        yield key, value
    elif isinstance(value, dict):
        for name, item in value.items():
            yield "", name
            yield from strings(item, name)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from strings(item, key)


def assert_inert(text: str) -> None:
    """Outside our own HF links, no `<`/`>` at all: nothing can ping or link anywhere."""
    rest = OUR_LINK.sub("", text)
    for marker in ("<!", "<@", "<#", "<http"):
        assert marker not in rest, (marker, text)
    assert "<" not in rest and ">" not in rest, text
    assert "&" not in ENTITY.sub("", rest), text  # every & is one of our entities
    assert not any(ord(ch) < 32 and ch != "\n" for ch in text), text


def assert_safe_url(url: str) -> None:
    """Button and image URLs are JSON fields, not mrkdwn: http(s), nothing that breaks out."""
    assert url.lower().startswith(("http://", "https://")), url
    assert not re.search(r"[<>|\s]", url), url


def assert_all_inert(rendered: list[dict], fallback: str) -> None:
    for key, value in strings(rendered):
        if key in ("url", "image_url"):
            assert_safe_url(value)
        else:
            assert_inert(value)
    assert_inert(fallback)


def card(n: int = 1, **changes: object) -> PaperCard:
    fields: dict[str, object] = {
        "paper_id": f"2605.{n:05d}",
        "title": f"Paper number {n}",
        "url": f"{HF}/2605.{n:05d}",
        "authors": ("Anika Bose", "Tom Reyes"),
        "upvotes": 64,
        "published": date(2026, 5, 4),
        "summary": "We make decoding faster.",
        "links": (
            Link("arXiv", f"https://arxiv.org/abs/2605.{n:05d}"),
            Link("PDF", f"https://arxiv.org/pdf/2605.{n:05d}"),
        ),
        "thumbnail": f"https://cdn.example/{n}.png",
    }
    fields.update(changes)
    return PaperCard(**fields)  # type: ignore[arg-type]


def hostile_message() -> Message:
    evil_card = card(
        1,
        title=f"Title {EVIL}",
        authors=(f"Author {EVIL}", "<@U999>", "B", "C", "<!here>"),
        summary=f"Summary {EVIL}",
        links=(Link(f"Code {EVIL}", "https://github.com/a/b?x=<!channel>|y&z=1"),),
        thumbnail="https://cdn.example/t.png?<!here>|x",
    )
    return Message(
        text=f"Papers on {EVIL}",
        lines=(f"Follow with `/papers follow {EVIL}`", EVIL),
        cards=(evil_card, card(2)),
        note=f"Note {EVIL}",
        attachment=Attachment(f"file {EVIL}.bib", f"@misc{{x,\n  title = {{{EVIL}}}\n}}\n"),
        visibility=Visibility.PUBLIC,
    )


def texts_of(rendered: list[dict], kind: str) -> list[str]:
    """The mrkdwn text of every block of `kind` (section: its text; context: its elements)."""
    found = []
    for block in rendered:
        if block["type"] != kind:
            continue
        if kind == "context":
            found += [element["text"] for element in block["elements"]]
        else:
            found.append(block["text"]["text"])
    return found


def buttons(rendered: list[dict]) -> list[dict]:
    return [
        element for block in rendered if block["type"] == "actions" for element in block["elements"]
    ]


# --- escape and link ----------------------------------------------------------------------


def test_escape_turns_slack_control_characters_into_entities() -> None:
    assert escape("<!channel> <@U123> <!subteam^S1|team> a & b") == (
        "&lt;!channel&gt; &lt;@U123&gt; &lt;!subteam^S1|team&gt; a &amp; b"
    )
    assert escape("&lt;") == "&amp;lt;"  # already-escaped text is not trusted either


def test_escape_keeps_markdown_and_newlines_but_drops_control_characters() -> None:
    assert escape("*bold* _it_ ~s~ `code`") == "*bold* _it_ ~s~ `code`"
    assert escape("a\x00b\x1b[31mc\x7fd\r\ne\tf\u202eg") == "ab[31mcd\ne fg"


def test_link_builds_slack_link_with_safe_label() -> None:
    assert link("https://huggingface.co/papers/1", "A | B > C") == (
        "<https://huggingface.co/papers/1|A \u2223 B &gt; C>"
    )


def test_link_percent_encodes_url_breakers_and_escapes_ampersands() -> None:
    assert link("https://x.example/a b?q=<1>|2&r=3", "go") == (
        "<https://x.example/a%20b?q=%3C1%3E%7C2&amp;r=3|go>"
    )


@pytest.mark.parametrize(
    "url", ["javascript:alert(1)", "ftp://x.example/", "//x.example", "", "https://", "x"]
)
def test_link_without_http_url_is_just_the_escaped_label(url: str) -> None:
    assert link(url, "<!here> & co") == "&lt;!here&gt; &amp; co"


# --- hostile text -------------------------------------------------------------------------


def test_hostile_text_never_pings_or_links_anywhere() -> None:
    message = hostile_message()
    rendered = blocks(message, share_value="share-1")
    assert_all_inert(rendered, fallback_text(message))
    # The hostile text is shown (escaped), not silently dropped.
    joined = "\n".join(value for _, value in strings(rendered))
    assert "&lt;!channel&gt;" in joined and "&lt;@U123&gt;" in joined
    assert "&lt;https://evil.example|click&gt;" in joined


def test_our_own_paper_links_survive_hostile_titles() -> None:
    sections = texts_of(blocks(hostile_message()), "section")
    first = next(text for text in sections if f"{HF}/2605.00001" in text)
    assert first.startswith(f"*<{HF}/2605.00001|Title &lt;!channel&gt; &lt;!here&gt;")
    assert OUR_LINK.search(first)
    assert "x \u2223 y" in first  # a `|` in a title can't end the link label
    assert any(text.startswith(f"*<{HF}/2605.00002|Paper number 2>*") for text in sections)


def test_hostile_urls_are_encoded_in_buttons_and_images() -> None:
    rendered = blocks(hostile_message())
    (code,) = [b for b in buttons(rendered) if b["text"]["text"].startswith("Code")]
    assert code["url"] == "https://github.com/a/b?x=%3C!channel%3E%7Cy&z=1"
    (section,) = [b for b in rendered if "accessory" in b and "t.png" in repr(b)]
    assert section["accessory"]["image_url"] == "https://cdn.example/t.png?%3C!here%3E%7Cx"


def test_unsafe_link_and_thumbnail_urls_are_left_out() -> None:
    bad = card(
        thumbnail="javascript:alert(1)",
        links=(Link("Evil", "javascript:alert(1)"), Link("Code", "https://github.com/a/b")),
    )
    rendered = blocks(Message(text="", cards=(bad,)))
    assert "accessory" not in rendered[0]
    assert [b["text"]["text"] for b in buttons(rendered)] == ["Code"]
    assert "javascript" not in repr(rendered)


def test_triple_backticks_in_an_attachment_cannot_close_the_code_block() -> None:
    message = Message(text="BibTeX", attachment=Attachment("a.bib", "x ``` y\n`````\n"))
    (code,) = [text for text in texts_of(blocks(message), "section") if "```" in text]
    assert code.count("```") == 2  # only our fences
    assert code.startswith("*a.bib*\n```\n") and code.endswith("\n```")


# --- Slack's limits -----------------------------------------------------------------------


def assert_within_limits(rendered: list[dict]) -> None:
    assert len(rendered) <= 50
    for text in texts_of(rendered, "section") + texts_of(rendered, "context"):
        assert 0 < len(text) <= 3000
    for block in rendered:
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= 150
        if block["type"] == "actions":
            assert len(block["elements"]) <= 25
    for button in buttons(rendered):
        assert 0 < len(button["text"]["text"]) <= 75
    action_ids = [button["action_id"] for button in buttons(rendered)]
    assert len(action_ids) == len(set(action_ids))


def test_ten_long_cards_and_a_100kb_attachment_fit_slack_limits() -> None:
    content = "".join(f"line {n:05d} " + "x" * 40 + "\n" for n in range(2000))
    assert len(content) >= 100_000
    cards = tuple(
        card(
            n,
            title="T" * 1000,
            authors=tuple("N" * 500 for _ in range(50)),
            summary="word " * 2000,
            links=tuple(Link("L" * 200, f"https://x.example/{n}/{i}") for i in range(4)),
        )
        for n in range(1, 11)
    )
    message = Message(
        text="Saved " * 100,
        lines=("line " * 1000,),
        cards=cards,
        note="note " * 1000,
        attachment=Attachment("big.bib", content),
    )
    rendered = blocks(message, share_value="s" * 2000)
    assert_within_limits(rendered)
    sections = texts_of(rendered, "section")
    assert sum(text.startswith(f"*<{HF}/") for text in sections) == 10  # every card is kept
    assert rendered[-1]["elements"][0]["action_id"] == SHARE_ACTION
    # The attachment is cut to the room left, and says how many lines are missing.
    code = [text for text in sections if "```" in text]
    shown = sum(text.count("\n") - 1 for text in code) - 1  # minus fences, minus the filename
    (note,) = [text for text in texts_of(rendered, "context") if "truncated" in text]
    assert note == f"…truncated, {2000 - shown} more lines"
    assert 0 < shown < 2000


def test_a_long_line_attachment_is_split_without_breaking_entities() -> None:
    message = Message(text="x", attachment=Attachment("a.txt", "<&>" * 5000))
    rendered = blocks(message)
    assert_within_limits(rendered)
    code = "".join(
        text.removeprefix("*a.txt*\n").removeprefix("```\n").removesuffix("\n```")
        for text in texts_of(rendered, "section")
        if "```" in text
    )
    assert code == "&lt;&amp;&gt;" * 5000


def test_too_many_cards_are_cut_with_a_count_of_the_rest() -> None:
    rendered = blocks(Message(text="Lots", cards=tuple(card(n) for n in range(1, 41))))
    assert_within_limits(rendered)
    shown = sum(text.startswith(f"*<{HF}/") for text in texts_of(rendered, "section"))
    assert 0 < shown < 40
    assert texts_of(rendered, "context")[-1] == f"…and {40 - shown} more papers"


def test_card_section_keeps_the_title_link_and_cuts_the_summary() -> None:
    (section, *_) = blocks(Message(text="", cards=(card(summary="&" * 5000),)))
    text = section["text"]["text"]
    assert len(text) <= 3000
    assert text.startswith(f"*<{HF}/2605.00001|Paper number 1>*\n")
    assert text.endswith("&amp;…")  # cut between entities, never inside one


# --- header -------------------------------------------------------------------------------


def test_list_heading_is_a_header_block() -> None:
    rendered = blocks(Message(text="Trending papers & more", cards=(card(),)))
    assert rendered[0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "Trending papers &amp; more", "emoji": True},
    }


def test_public_post_heading_is_a_header_with_lines_below() -> None:
    message = Message(
        text="Trending papers", lines=("React with `:bookmark:`",), visibility=Visibility.PUBLIC
    )
    rendered = blocks(message)
    assert rendered[0]["type"] == "header"
    assert rendered[1]["text"]["text"] == "React with `:bookmark:`"


@pytest.mark.parametrize(
    "text",
    ["T" * 151, "Use `/papers follow` first", "two\nlines", "&" * 40],  # 40 & = 200 escaped
)
def test_heading_that_does_not_fit_a_header_stays_whole_in_a_section(text: str) -> None:
    rendered = blocks(Message(text=text, cards=(card(),)))
    assert all(block["type"] != "header" for block in rendered)
    assert rendered[0]["text"]["text"] == escape(text)


def test_a_reply_without_cards_keeps_its_heading_and_lines_in_one_section() -> None:
    rendered = blocks(Message(text="You follow 2 topic(s):", lines=("llm", "agents")))
    assert rendered == [
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": "You follow 2 topic(s):\nllm\nagents"},
        }
    ]


def test_a_lone_paper_starts_with_its_card() -> None:
    rendered = blocks(Message(text="", cards=(card(),), visibility=Visibility.PUBLIC))
    assert rendered[0]["text"]["text"].startswith(f"*<{HF}/2605.00001|Paper number 1>*")


# --- cards --------------------------------------------------------------------------------


def test_card_shows_three_authors_then_a_count_upvotes_and_date() -> None:
    authors = ("A", "B", "C", "D", "E")
    text = blocks(Message(text="", cards=(card(authors=authors),)))[0]["text"]["text"]
    assert text.split("\n")[1] == "A, B, C +2 more · :arrow_up_small: 64 · 2026-05-04"
    assert text.split("\n")[2] == "We make decoding faster."


def test_card_thumbnail_is_an_image_accessory() -> None:
    (section, _) = blocks(Message(text="", cards=(card(),)))
    assert section["accessory"] == {
        "type": "image",
        "image_url": "https://cdn.example/1.png",
        "alt_text": "Paper number 1",
    }


def test_demo_card_says_demo_sample_instead_of_missing_facts() -> None:
    demo = PaperCard(
        paper_id="demo-1",
        title="A demo paper",
        url=f"{HF}?q=A+demo+paper&x=1",
        summary="Offline sample.",
        is_demo=True,
    )
    rendered = blocks(Message(text="Trending papers from the offline demo sample", cards=(demo,)))
    text = rendered[1]["text"]["text"]
    assert text == f"*<{HF}?q=A+demo+paper&amp;x=1|A demo paper>*\ndemo sample\nOffline sample."
    assert buttons(rendered) == []  # no arXiv links to offer


def test_link_buttons_have_urls_short_labels_and_unique_action_ids() -> None:
    cards = tuple(
        card(n, links=(Link("arXiv", "https://a.example"), Link("P" * 100, "https://b.example")))
        for n in range(1, 4)
    )
    rendered = blocks(Message(text="x", cards=cards), share_value="v")
    link_buttons = [b for b in buttons(rendered) if b["action_id"] != SHARE_ACTION]
    assert [b["action_id"] for b in link_buttons] == [f"paperboy_link_{n}" for n in range(1, 7)]
    assert link_buttons[1]["text"]["text"] == "P" * 74 + "…"
    assert link_buttons[1]["url"] == "https://b.example"
    assert_within_limits(rendered)


# --- share button, note, fallback ---------------------------------------------------------


def test_share_button_only_when_asked_and_carries_the_value() -> None:
    message = Message(text="Trending", cards=(card(),), shareable=True)
    assert SHARE_ACTION not in repr(blocks(message))
    rendered = blocks(message, share_value="v" * 2000)
    assert rendered[-1] == {
        "type": "actions",
        "elements": [
            {
                "type": "button",
                "text": {"type": "plain_text", "text": "Share to channel", "emoji": True},
                "action_id": SHARE_ACTION,
                "value": "v" * 2000,
            }
        ],
    }


def test_share_value_over_slack_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="2000"):
        blocks(Message(text="x"), share_value="v" * 2001)


def test_note_is_an_escaped_context_block_after_the_cards() -> None:
    rendered = blocks(Message(text="x", cards=(card(),), note="Demo <data> & `code`"))
    assert rendered[-1] == {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": "Demo &lt;data&gt; &amp; `code`"}],
    }


def test_fallback_text_is_heading_and_titles() -> None:
    message = Message(text="Trending <!here>", cards=(card(1), card(2, title="B & C")))
    assert fallback_text(message) == "Trending &lt;!here&gt;\n• Paper number 1\n• B &amp; C"
    assert fallback_text(Message(text="", cards=(card(),))) == "Paper number 1"
    assert fallback_text(Message(text="")) == "paperboy"  # Slack refuses an empty text


def test_fallback_text_is_capped() -> None:
    message = Message(text="x", cards=tuple(card(n, title="<" * 500) for n in range(100)))
    text = fallback_text(message)
    assert len(text) <= 3000 and text.endswith("…")
    assert_inert(text)


# --- properties ---------------------------------------------------------------------------

hostile_text = st.lists(st.one_of(st.text(), st.sampled_from(HOSTILE)), max_size=8).map("".join)


@settings(max_examples=300, deadline=None)
@given(
    title=hostile_text,
    authors=st.lists(hostile_text, max_size=6),
    summary=st.none() | hostile_text,
    text=hostile_text,
    line=hostile_text,
    note=st.none() | hostile_text,
    label=hostile_text,
    link_url=hostile_text,
    demo=st.booleans(),
)
def test_blocks_never_raise_and_no_foreign_markup_survives(
    title: str,
    authors: list[str],
    summary: str | None,
    text: str,
    line: str,
    note: str | None,
    label: str,
    link_url: str,
    demo: bool,
) -> None:
    paper = card(
        title=title,
        authors=tuple(authors),
        summary=summary,
        links=(Link(label, link_url), Link(label, "https://x.example/" + link_url)),
        thumbnail=link_url,
        is_demo=demo,
    )
    message = Message(text=text, lines=(line,), cards=(paper,), note=note)
    rendered = blocks(message, share_value="v")
    assert_all_inert(rendered, fallback_text(message))
    assert_within_limits(rendered)
    assert OUR_LINK.search(texts_of(rendered, "section")[-1])  # the card still links to HF


@settings(max_examples=300, deadline=None)
@given(url=hostile_text | st.builds("https://{}".format, hostile_text), label=hostile_text)
def test_link_is_one_well_formed_link_or_inert_text(url: str, label: str) -> None:
    result = link(url, label)
    match = re.fullmatch(r"<(https?://[^<>|\s]+)(?:\|([^<>|]*))?>", result, re.IGNORECASE)
    if match is None:
        assert "<" not in result and ">" not in result
    else:
        assert url.lower().startswith(("http://", "https://"))
    assert "&" not in ENTITY.sub("", result)


@given(st.text())
def test_escape_leaves_no_markup_characters(text: str) -> None:
    escaped = escape(text)
    assert "<" not in escaped and ">" not in escaped
    assert "&" not in ENTITY.sub("", escaped)
    # Line breaks are kept; line and paragraph separators become line breaks.
    assert escaped.count("\n") == text.count("\n") + text.count("\u2028") + text.count("\u2029")
