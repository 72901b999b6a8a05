"""Papers named in text (bot/links.py): which links count, ids old and new, and hostile text."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.commands import parser as p
from bot.commands.parser import UsageError, parse
from bot.links import MAX_IDS, FoundPapers, Rejected, find_paper_ids, reference_id, reference_words


def ids(text: str) -> list[str]:
    return list(find_paper_ids(text).ids)


# Links in running text -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://arxiv.org/abs/2501.12345", "2501.12345"),
        ("http://arxiv.org/abs/2501.12345v2", "2501.12345"),
        ("https://www.arxiv.org/abs/2501.12345", "2501.12345"),
        ("https://export.arxiv.org/abs/2501.12345v11", "2501.12345"),
        ("arxiv.org/abs/2501.12345", "2501.12345"),
        ("https://arxiv.org/pdf/2501.12345", "2501.12345"),
        ("https://arxiv.org/pdf/2501.12345v3.pdf", "2501.12345"),
        ("https://arxiv.org/pdf/2501.12345.pdf", "2501.12345"),
        ("https://arxiv.org/html/2501.12345v1", "2501.12345"),
        ("https://arxiv.org/html/2501.12345v1/#S3", "2501.12345"),
        ("https://arxiv.org/abs/2501.12345?context=cs.LG", "2501.12345"),
        ("HTTPS://ARXIV.ORG/ABS/2501.12345", "2501.12345"),
        ("https://huggingface.co/papers/2501.12345", "2501.12345"),
        ("https://www.huggingface.co/papers/2501.12345#community", "2501.12345"),
        ("huggingface.co/papers/2501.12345", "2501.12345"),
        ("https://alphaxiv.org/abs/2501.12345", "2501.12345"),
        ("https://www.alphaxiv.org/abs/2501.12345v2", "2501.12345"),
        ("arXiv:2501.12345", "2501.12345"),
        ("arxiv:2501.12345v4", "2501.12345"),
        ("ARXIV: 2501.12345", "2501.12345"),
        ("https://arxiv.org/abs/0704.0001", "0704.0001"),
        ("https://arxiv.org/abs/1412.9999", "1412.9999"),
        ("https://arxiv.org/abs/1501.00001", "1501.00001"),
        ("https://arxiv.org/abs/hep-th/9901001", "hep-th/9901001"),
        ("https://arxiv.org/abs/hep-th/9901001v2", "hep-th/9901001"),
        ("https://arxiv.org/pdf/cond-mat/0211034v1.pdf", "cond-mat/0211034"),
        ("arXiv:math.GT/0309136", "math/0309136"),
        ("https://arxiv.org/abs/math.GT/0309136", "math/0309136"),
        ("arXiv:cs/0112017", "cs/0112017"),
        ("arXiv:HEP-TH/9901001", "hep-th/9901001"),
    ],
)
def test_every_form_of_link_names_its_paper(text: str, expected: str) -> None:
    assert ids(text) == [expected]
    # Wherever it stands in a sentence, and however chat clients wrap it.
    for wrapped in (
        f"look at {text} today",
        f"({text})",
        f"<{text}>",
        f"<{text}|the paper>",
        f"*{text}*",
        f"“{text}”",
        f"see: {text}.",
        f"{text}, and more",
        f"line one\n> {text}\nline three",
        f"non-breaking\u00a0{text}\u00a0space",
    ):
        assert ids(wrapped) == [expected], wrapped


def test_ids_come_in_order_each_once() -> None:
    text = (
        "First https://arxiv.org/abs/2501.00002v1 then arXiv:2501.00001, "
        "https://huggingface.co/papers/2501.00002 again, and "
        "<https://arxiv.org/pdf/2501.00003.pdf|a PDF> and arXiv:2501.00001v2 once more."
    )
    assert find_paper_ids(text) == FoundPapers(("2501.00002", "2501.00001", "2501.00003"))


def test_slack_labels_do_not_count_the_url_does() -> None:
    # The label is text the sender chose; where the link goes is what counts.
    assert ids("<https://evil.example/x|https://arxiv.org/abs/2501.12345>") == []
    assert ids("<https://arxiv.org/abs/2501.12345|https://arxiv.org/abs/2501.99999>") == [
        "2501.12345"
    ]
    assert ids("<https://arxiv.org/abs/2501.12345|a title | with bars>") == ["2501.12345"]


@pytest.mark.parametrize(
    "text",
    [
        "2501.12345",  # a bare number in running text may be anything
        "version 2501.12345 of the tool",
        "https://arxiv.org.evil.com/abs/2501.12345",
        "https://arxiv.org.evil.com/pdf/2501.12345.pdf",
        "http://evilarxiv.org/abs/2501.12345",
        "https://not-arxiv.org/abs/2501.12345",
        "https://huggingface.co.evil.com/papers/2501.12345",
        "https://evil.com/arxiv.org/abs/2501.12345",
        "https://evil.com/?u=https://arxiv.org/abs/2501.12345",
        "https://evil.com/#https://arxiv.org/abs/2501.12345",
        "https://arxiv.org@evil.com/abs/2501.12345",
        "user@arxiv.org/abs/2501.12345",
        "https://evil.com/redirect/https://huggingface.co/papers/2501.12345",
        "https://arxiv.org/list/cs.LG/recent",
        "https://arxiv.org/abs/",
        "https://huggingface.co/papers",
        "https://huggingface.co/papers/trending",
        "https://huggingface.co/2501.12345",
        "https://arxiv.org/a/2501.12345",
        "https://arxiv.org/abs/2501.123456",  # an id inside a longer number
        "https://arxiv.org/abs/2501.12345abc",
        "https://arxiv.org/abs/2501.12345-extra",
        "https://arxiv.org/abs/2501.12345.6",
        "https://arxiv.org/abs/x2501.12345",
        "https://arxiv.org/abs/2501.1234",  # four digits after 2015
        "https://arxiv.org/abs/1412.12345",  # five before
        "https://arxiv.org/abs/2513.12345",  # month 13
        "https://arxiv.org/abs/2500.12345",  # month 0
        "https://arxiv.org/abs/0703.1234",  # before new-style ids began
        "https://arxiv.org/abs/hep-th/9913001",
        "https://arxiv.org/abs/made-up/9901001",
        "https://arxiv.org/abs/hep-th/990100",
        "myarXiv:2501.12345",
        "arXiv2501.12345",
        "arXiv:  2501.12345",
        "arxiv:2501.12345v",
        "the-arxiv.org/abs/2501.12345",
        "https://arx\u0131v.org/abs/2501.12345",  # a dotless i: another domain
        "https://\u0430rxiv.org/abs/2501.12345",  # a Cyrillic a
        "https://hugg\u0131ngface.co/papers/2501.12345",
        "arXiv:\u0662\u0665\u0660\u0661.\u0661\u0662\u0663\u0664\u0665",  # Arabic-Indic digits
        "arXiv:2501.12345\u00e9",  # an id glued to a letter
        "",
    ],
)
def test_lookalikes_and_malformed_ids_count_for_nothing(text: str) -> None:
    assert ids(text) == [], text


def test_an_id_ends_where_it_ends() -> None:
    assert ids("arXiv:2501.12345_") == ["2501.12345"]  # markdown italics around it
    assert ids("_arXiv:2501.12345_") == ["2501.12345"]
    assert ids("arXiv:2501.12345_x") == []


def test_the_cap_keeps_the_first_ids_and_says_so() -> None:
    links = [f"https://arxiv.org/abs/2501.{n:05d}" for n in range(1, MAX_IDS + 6)]
    found = find_paper_ids(" ".join(links))
    assert found.capped
    assert found.ids == tuple(f"2501.{n:05d}" for n in range(1, MAX_IDS + 1))
    exactly = find_paper_ids(" ".join(links[:MAX_IDS]) + " " + links[0])  # a repeat is no more
    assert not exactly.capped and len(exactly.ids) == MAX_IDS
    assert find_paper_ids(" ".join(links), limit=2) == FoundPapers(
        ("2501.00001", "2501.00002"), capped=True
    )


# Hostile text --------------------------------------------------------------------------


def test_huge_text_is_read_through_and_still_capped() -> None:
    filler = "arxiv.org/abs/ arXiv: 2501. https://arxiv.org/abs/2501.1 <<<|>>> " * 20_000
    text = filler + " https://arxiv.org/abs/2501.00001 " + filler
    assert len(text) > 2_000_000
    assert ids(text) == ["2501.00001"]
    many = " ".join(f"arXiv:2501.{n:05d}" for n in range(1, 50_001))
    found = find_paper_ids(many)
    assert found.capped and len(found.ids) == MAX_IDS


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<<https://arxiv.org/abs/2501.12345>>", ["2501.12345"]),
        ("<<<<<<<<<<https://arxiv.org/abs/2501.12345|<x|y>>>>>>>>>", ["2501.12345"]),
        ("<https://arxiv.org/abs/<2501.12345>>", []),
        ("[[[(https://arxiv.org/abs/2501.12345)]]]", ["2501.12345"]),
        ("<" * 50_000 + "arXiv:2501.12345" + ">" * 50_000, ["2501.12345"]),
        ("<a|" * 30_000 + "https://arxiv.org/abs/2501.12345", ["2501.12345"]),
        ("<" + "a|" * 30_000, []),
        ("[arXiv:2501.12345](https://evil.example)", ["2501.12345"]),  # shown text: a reference
    ],
)
def test_nested_and_unclosed_brackets(text: str, expected: list[str]) -> None:
    assert ids(text) == expected


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet=st.sampled_from(list("arxiv.org/abs:0123456789<>|hepth- \nv_")), max_size=300)
)
def test_any_text_gives_well_formed_distinct_ids(text: str) -> None:
    found = find_paper_ids(text)
    assert len(found.ids) == len(set(found.ids)) <= MAX_IDS
    for arxiv_id in found.ids:
        # Each id found names itself as a bare reference, and is found again in a link.
        assert reference_id(arxiv_id) == arxiv_id
        assert ids(f"https://arxiv.org/abs/{arxiv_id}") == [arxiv_id]


# Words of `/papers save` -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("2501.12345", "2501.12345"),
        ("2501.12345v2", "2501.12345"),
        ("hep-th/9901001", "hep-th/9901001"),
        ("math.GT/0309136", "math/0309136"),
        ("arXiv:2501.12345", "2501.12345"),
        ("https://arxiv.org/abs/2501.12345", "2501.12345"),
        ("<https://arxiv.org/abs/2501.12345>", "2501.12345"),
        ("<https://arxiv.org/abs/2501.12345|Attention, please>", "2501.12345"),
        ("https://huggingface.co/papers/2501.12345.", "2501.12345"),
        ("(2501.12345)", "2501.12345"),
        ("2501.1234", Rejected.MALFORMED_ID),
        ("2513.12345", Rejected.MALFORMED_ID),
        ("25011234", Rejected.MALFORMED_ID),
        ("arXiv:nonsense", Rejected.MALFORMED_ID),
        ("https://arxiv.org/abs/2501.1", Rejected.MALFORMED_ID),
        ("https://arxiv.org/abs/hep-th/99", Rejected.MALFORMED_ID),
        ("hep-th/990100", Rejected.MALFORMED_ID),
        ("https://arxiv.org/list/cs.LG/recent", Rejected.NOT_A_PAPER_LINK),
        ("https://huggingface.co/papers/trending", Rejected.NOT_A_PAPER_LINK),
        ("https://arxiv.org.evil.com/abs/2501.12345", Rejected.NOT_A_PAPER_LINK),
        ("https://example.com", Rejected.NOT_A_PAPER_LINK),
        ("example.com/paper", Rejected.NOT_A_PAPER_LINK),
        ("<https://example.com|https://arxiv.org/abs/2501.12345>", Rejected.NOT_A_PAPER_LINK),
        ("ftp://arxiv.org/abs/2501.12345", Rejected.NOT_A_PAPER_LINK),
        ("attention", Rejected.NOT_AN_ID),
        ("<!channel>", Rejected.NOT_AN_ID),
        ("", Rejected.NOT_AN_ID),
    ],
)
def test_a_word_names_one_paper_or_says_why_not(word: str, expected: str | Rejected) -> None:
    assert reference_id(word) == expected


def test_words_split_at_spaces_and_commas_keeping_slack_links_whole() -> None:
    text = "2501.00001,2501.00002 <https://arxiv.org/abs/2501.00003|A title, with commas> x<y"
    assert reference_words(text) == [
        "2501.00001", "2501.00002", "<https://arxiv.org/abs/2501.00003|A title, with commas>",
        "x<y",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("unsave https://alphaxiv.org/abs/2405.15738v2", p.Unsave("2405.15738")),
        ("unsave arXiv:math.GT/0309136", p.Unsave("math/0309136")),
        ("unsave <https://arxiv.org/html/2405.15738v1|HTML>", p.Unsave("2405.15738")),
    ],
)
def test_unsave_reads_ids_with_the_same_rule(text: str, expected: p.Command) -> None:
    assert parse(text) == expected


def test_unsave_refuses_what_names_no_paper() -> None:
    for typed in ("unsave 2501.1234", "unsave https://arxiv.org.evil.com/abs/2501.12345"):
        with pytest.raises(UsageError, match="/papers unsave"):
            parse(typed)


# The `save` command's parsing ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("save 2501.12345", p.SavePapers(("2501.12345",))),
        ("SAVE arXiv:2501.12345v2", p.SavePapers(("2501.12345",))),
        (
            "save https://arxiv.org/abs/2501.00002 2501.00001, <https://huggingface.co/papers/"
            "2501.00002|the same one> hep-th/9901001",
            p.SavePapers(("2501.00002", "2501.00001", "hep-th/9901001")),
        ),
        ("save demo-007", p.SavePapers(("demo-007",))),
    ],
)
def test_save_parses_links_and_ids(text: str, expected: p.Command) -> None:
    assert parse(text) == expected


def test_save_caps_and_says_it_did() -> None:
    typed = "save " + " ".join(f"https://arxiv.org/abs/2501.{n:05d}" for n in range(1, 31))
    assert len(typed) > p.MAX_COMMAND_LENGTH  # `save` may run longer than other commands
    command = parse(typed)
    assert command == p.SavePapers(
        tuple(f"2501.{n:05d}" for n in range(1, MAX_IDS + 1)), capped=True
    )
    with pytest.raises(UsageError, match=f"{p.MAX_SAVE_LENGTH} characters"):
        parse("save " + "2501.12345 " * 400)
    with pytest.raises(UsageError, match="500 characters"):
        parse("topic " + "x" * 600)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("save", "Usage: `/papers save"),
        ("save   ", "Usage: `/papers save"),
        ("save 2501.1234", "That is not a well-formed arXiv id"),
        ("save 2501.12345 2513.00001", "Item 2 of 2 is not a well-formed arXiv id"),
        ("save https://arxiv.org/list/cs.LG/new", "That links to something other than a paper"),
        ("save 2501.12345 https://arxiv.org.evil.com/abs/2501.12345", "Item 2 of 2 links to"),
        ("save attention is all you need", "Item 1 of 5 is neither an arXiv id nor a link"),
        ("save <!channel>", "That is neither"),
        ("save <@U123|bob> 2501.12345", "Item 1 of 2 is neither"),
    ],
)
def test_save_refuses_anything_that_names_no_paper(text: str, why: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse(text)
    hint = str(caught.value)
    assert why in hint
    assert "nothing was saved" in hint or hint.startswith("Usage")
    assert "\n" not in hint and len(hint) < 400 and hint.isascii()
    assert "evil" not in hint and "channel>" not in hint and "attention" not in hint
