"""The command parser: every form of DESIGN.md's surface, and a usage line for everything else."""

from __future__ import annotations

import pytest

from bot.commands import HANDLERS
from bot.commands import parser as p
from bot.commands.parser import UsageError, parse
from bot.words import search_terms
from config import ConfigError
from config.settings import MAX_POST_COUNT, load_settings


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", p.Today()),
        ("   ", p.Today()),
        ("today", p.Today()),
        ("TODAY", p.Today()),
        ("topic latency", p.Topic("latency")),
        ("topic  Speculative   Decoding ", p.Topic("speculative decoding")),
        ("topic c++ text-to-speech", p.Topic("c++ text-to-speech")),
        ("follow latency", p.Follow("latency")),
        ("unfollow latency", p.Unfollow("latency")),
        ("following", p.Following()),
        ("saved", p.Saved()),
        ("unsave 2405.15738", p.Unsave("2405.15738")),
        ("unsave 2405.15738v3", p.Unsave("2405.15738")),
        ("unsave arXiv:2405.15738", p.Unsave("2405.15738")),
        ("unsave https://arxiv.org/abs/2405.15738v2", p.Unsave("2405.15738")),
        ("unsave <https://arxiv.org/pdf/2405.15738.pdf>", p.Unsave("2405.15738")),
        ("unsave https://huggingface.co/papers/2405.15738", p.Unsave("2405.15738")),
        ("unsave hep-th/9901001", p.Unsave("hep-th/9901001")),
        ("unsave demo-007", p.Unsave("demo-007")),
        ("export bibtex", p.ExportBibtex()),
        ("digest", p.DigestStatus()),
        ("digest off", p.DigestOff()),
        ("digest now", p.DigestNow()),
        ("digest daily 08:00", p.DigestSet("daily", None, "08:00", None)),
        ("digest daily 8:05 asia/tokyo", p.DigestSet("daily", None, "08:05", "Asia/Tokyo")),
        ("digest weekly 08:00", p.DigestSet("weekly", 0, "08:00", None)),
        ("digest weekly fri 17:30 UTC", p.DigestSet("weekly", 4, "17:30", "UTC")),
        ("digest weekly Sunday 07:00", p.DigestSet("weekly", 6, "07:00", None)),
        ("channel", p.ChannelStatus()),
        ("channel status", p.ChannelStatus()),
        ("channel on", p.ChannelOn(None, None, None)),
        ("channel on 09:00", p.ChannelOn("09:00", None, None)),
        ("channel on 09:00 Europe/Berlin", p.ChannelOn("09:00", "Europe/Berlin", None)),
        ("channel on 09:00 Europe/Berlin 7", p.ChannelOn("09:00", "Europe/Berlin", 7)),
        ("channel on Europe/Berlin", p.ChannelOn(None, "Europe/Berlin", None)),
        ("channel on 3", p.ChannelOn(None, None, 3)),
        ("channel on 09:00 UTC 3 weekdays", p.ChannelOn("09:00", "UTC", 3, "mon-fri")),
        ("channel on daily", p.ChannelOn(None, None, None, "mon-sun")),
        ("channel on 08:30 Monday,WED,friday", p.ChannelOn("08:30", None, None, "mon,wed,fri")),
        ("channel on 5 mon-thu,sat", p.ChannelOn(None, None, 5, "mon-thu,sat")),
        ("channel on fri-mon", p.ChannelOn(None, None, None, "mon,fri-sun")),
        ("channel on weekends", p.ChannelOn(None, None, None, "sat,sun")),
        ("channel off", p.ChannelOff()),
        ("channel post-now", p.ChannelPostNow()),
        ("channel topics add LLM Inference", p.ChannelTopicAdd("llm inference")),
        ("channel topics remove llm inference", p.ChannelTopicRemove("llm inference")),
        ("help", p.Help()),
        ("week", p.MostUpvoted("week")),
        ("Month", p.MostUpvoted("month")),
        ("team", p.Team("week")),
        ("team week", p.Team("week")),
        ("team MONTH", p.Team("month")),
        ("team all", p.Team("all")),
    ],
)
def test_every_command_form_parses(text: str, expected: p.Command) -> None:
    assert parse(text) == expected


def test_every_command_has_a_handler() -> None:
    assert set(p.Command.__args__) == set(HANDLERS)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("text", "form"),
    [
        ("frobnicate", "/papers help"),
        ("topic", "/papers topic <words>"),
        ("topic <!channel>", "/papers topic <words>"),
        ("topic @everyone", "/papers topic <words>"),
        ("topic latency'; DROP TABLE papers; --", "/papers topic <words>"),
        ("topic *bold* _it_ `code`", "/papers topic <words>"),
        ("topic " + "a" * 81, "/papers topic <words>"),
        ("follow", "/papers follow <topic>"),
        ("follow <script>alert(1)</script>", "/papers follow <topic>"),
        ("today please", "/papers today"),
        ("saved all", "/papers saved"),
        ("unsave", "/papers unsave <arXiv id>"),
        ("unsave not-an-id", "/papers unsave <arXiv id>"),
        ("unsave 2405.15738 2405.15739", "/papers unsave <arXiv id>"),
        ("export", "/papers export bibtex"),
        ("export csv", "/papers export bibtex"),
        ("digest daily", "/papers digest daily HH:MM"),
        ("digest daily 25:00", "HH:MM"),
        ("digest daily 08:60", "HH:MM"),
        ("digest daily 13pm", "HH:MM"),
        ("digest daily 8", "HH:MM"),
        ("digest daily 08:00 Mars/Olympus", "IANA name"),
        ("digest daily 08:00 ../../etc/passwd", "IANA name"),
        ("digest weekly fr 08:00", "mon, tue"),
        ("digest monthly 08:00", "/papers digest"),
        ("digest daily 08:00 UTC extra", "/papers digest"),
        ("channel on 09:00 Europe/Berlin 0", "1 to 10"),
        ("channel on 09:00 Europe/Berlin 11", "1 to 10"),
        ("channel on 09:00 Europe/Berlin ５", "1 to 10"),  # noqa: RUF001
        ("channel on 24:00", "HH:MM"),
        ("channel on 09:00 Nowhere/City", "IANA name"),
        ("channel on 09:00 UTC 5 extra", "mon,wed,fri"),
        ("channel on 09:00 UTC 5 mon,,fri", "mon,wed,fri"),
        ("channel on 09:00 UTC 5 weekdays extra", "/papers channel on"),
        ("channel topics add", "/papers channel"),
        ("channel topics add <!here>", "/papers channel"),
        ("channel explode", "/papers channel"),
        ("team year", "/papers team [week|month|all]"),
        ("team week all", "/papers team [week|month|all]"),
        ("team 7", "/papers team [week|month|all]"),
        ("week 2", "/papers week"),
        ("month all", "/papers month"),
    ],
)
def test_malformed_commands_get_a_one_line_usage_hint(text: str, form: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse(text)
    message = str(caught.value)
    assert form in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "text",
    [
        "topic late\x00ncy",
        "topic \x1b[31mred",
        "follow a\x07b",
        "topic \u202egnp.exe",
        "x" * 10_000,
        "topic " + "latency " * 2000,
    ],
)
def test_control_characters_and_huge_input_are_refused(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse(text)
    assert len(str(caught.value)) < 200


def test_usage_hints_never_echo_the_input() -> None:
    hostile = "<!channel>"
    for text in (f"digest daily {hostile}", f"channel on {hostile}", f"unsave {hostile}"):
        with pytest.raises(UsageError) as caught:
            parse(text)
        assert hostile not in str(caught.value)


def test_tabs_and_newlines_count_as_spaces() -> None:
    assert parse("topic\tspeculative\ndecoding") == p.Topic("speculative decoding")


@pytest.mark.parametrize(
    ("typed", "topic", "terms"),
    [
        ("cafe\u0301", "café", ["café"]),  # decomposed, as some keyboards type it
        ("Scho\u0308lkopf", "schölkopf", ["schölkopf"]),
        ("İstanbul", "i\u0307stanbul", ["i\u0307stanbul"]),  # "İ" lower-cases to i + a dot
        ("हिन्दी मॉडल", "हिन्दी मॉडल", ["हिन्दी", "मॉडल"]),  # vowel signs are marks
        ("llm-rag, c++", None, None),
        ("diffusion-based video", "diffusion-based video", ["diffusion", "based", "video"]),
    ],
)
def test_topics_keep_combining_marks_inside_their_words(
    typed: str, topic: str | None, terms: list[str] | None
) -> None:
    if topic is None:
        with pytest.raises(UsageError):
            parse(f"follow {typed}")
        return
    assert parse(f"follow {typed}") == p.Follow(topic)
    assert search_terms(topic) == terms


def test_a_time_typed_without_its_colon_is_refused_as_a_time() -> None:
    with pytest.raises(p.UsageError, match="Times are like 09:00, 21:30 or 9am"):
        p.parse("channel on 0830")
    assert p.parse("channel on 7") == p.ChannelOn(None, None, 7)


@pytest.mark.parametrize(
    ("typed", "time"),
    [("9am", "09:00"), ("9:30pm", "21:30"), ("21:00", "21:00"), ("12am", "00:00"),
     ("12pm", "12:00"), ("7 PM", None), ("7PM", "19:00"), ("6:05a.m.", "06:05")],
)  # fmt: skip
def test_times_are_read_as_people_type_them(typed: str, time: str | None) -> None:
    if time is None:  # "7" is a count, and "PM" no time zone nor days
        with pytest.raises(p.UsageError):
            p.parse(f"channel on {typed}")
        return
    assert p.parse(f"channel on {typed}") == p.ChannelOn(time, None, None)
    assert p.parse(f"digest daily {typed}") == p.DigestSet("daily", None, time, None)
    assert p.parse(f"channel weekly on fri {typed}") == p.ChannelWeeklyOn(4, time, None)


@pytest.mark.parametrize(
    ("typed", "meant"),
    [("folow x", "follow"), ("tpoic x", "topic"), ("savd", "saved"), ("hepl", "help"),
     ("chanel on", "channel")],
)  # fmt: skip
def test_a_mistyped_command_word_gets_a_suggestion(typed: str, meant: str) -> None:
    with pytest.raises(p.UsageError) as caught:
        p.parse(typed)
    assert str(caught.value) == f"Unknown command: did you mean `/papers {meant}`?"


def test_a_word_like_no_command_gets_the_general_hint() -> None:
    with pytest.raises(p.UsageError, match=r"Unknown command\. Try `/papers today`"):
        p.parse("zzzz")


def test_the_post_count_has_one_range_for_the_command_and_the_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert p.parse(f"channel on {MAX_POST_COUNT}") == p.ChannelOn(None, None, MAX_POST_COUNT)
    with pytest.raises(p.UsageError, match=f"from 1 to {MAX_POST_COUNT}"):
        p.parse(f"channel on {MAX_POST_COUNT + 1}")
    monkeypatch.setenv("PAPERBOY_DEFAULT_POST_COUNT", str(MAX_POST_COUNT))
    assert load_settings().default_post_count == MAX_POST_COUNT
    monkeypatch.setenv("PAPERBOY_DEFAULT_POST_COUNT", str(MAX_POST_COUNT + 1))
    with pytest.raises(ConfigError, match="PAPERBOY_DEFAULT_POST_COUNT"):
        load_settings()


@pytest.mark.parametrize(
    ("typed", "first"),
    [("berl", "Europe/Berlin"), ("new york", "America/New_York"), ("TOKYO", "Asia/Tokyo"),
     ("utc", "UTC"), ("", "UTC")],
)  # fmt: skip
def test_timezone_suggestions_put_the_likeliest_name_first(typed: str, first: str) -> None:
    suggestions = p.suggest_timezones(typed)
    assert suggestions[0] == first
    assert all(p.parse_timezone(name, "digest") == name for name in suggestions)


def test_timezone_suggestions_are_bounded_and_may_be_empty() -> None:
    assert len(p.suggest_timezones("a", 25)) == 25
    assert p.suggest_timezones("nowhere at all") == []
