"""Hostile paper text end to end: papers whose titles, abstracts, AI summaries and keywords,
author names and links are full of mentions, links and markdown come from the fake Hugging Face,
are ingested, and go out through both real adapters in every flow (daily post, `/papers today`,
`/papers topic`, the DM digest, a reaction confirmation, a share, saved papers and the BibTeX
export). The assertions read what the fake Slack and the fake Discord received.

Slack: paper text may never produce a `<...>` control sequence (`<!channel>`, `<@U1>`, `<#C1>`,
`<!subteam^S1>`, `<url|label>`); the only ones allowed are the bot's own links to Hugging Face
and `Shared by <@user>`; every `&` is an entity. Discord: every message disables mentions
(`allowed_mentions: {"parse": []}`), no raw mention syntax survives, and paper markdown
(emphasis, code, quotes, spoilers, headings, subtext, masked links) is escaped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from sqlalchemy import select

from adapters.slack.pacing import SlackPacer
from adapters.slack.render import SHARE_ACTION
from bot.sources.huggingface import HuggingFaceClient
from bot.sources.ingest import ingest_days
from storage.models import Post
from storage.store import Store
from tests.core_fixtures import NOW
from tests.discord_fixtures import DiscordHarness
from tests.fakes.discord import CHANNEL_ID, USER_ID, Call, FakeDiscord, component, reaction_add
from tests.fakes.huggingface import FakeHuggingFace
from tests.slack_fixtures import SlackHarness

DAY = "2026-05-05"  # the newest list the harnesses' clock (NOW) sees: replaced by hostile papers
WORD = "quokka"  # in every hostile paper's title and keywords: `/papers topic quokka` finds them

MENTIONS = ("<!channel>", "<!here>", "<!everyone>", "<@U123>", "<#C123>", "<!subteam^S123>",
            "@everyone", "@here", "<@&123456>", "<@123456>")  # fmt: skip
LINKS = ("<https://evil.example|click>", "[click](https://evil.example)", "https://evil.example")
MARKDOWN = ("*bold*", "_it_", "~s~", "`code`", "```", "> quote", "||spoiler||", "# heading",
            "-# subtext")  # fmt: skip
EVERYTHING = " ".join((*MENTIONS, *LINKS, *MARKDOWN, "& co"))


def hf_item(
    arxiv_id: str,
    title: str,
    *,
    abstract: str,
    authors: list[str],
    upvotes: int,
    ai_summary: str | None = None,
    ai_keywords: list[str] | None = None,
    github: str | None = None,
    project: str | None = None,
    thumbnail: str | None = None,
) -> dict[str, Any]:
    """One `/api/daily_papers` item in the API's JSON schema (see tests/fixtures/hf/)."""
    paper: dict[str, Any] = {
        "id": arxiv_id,
        "authors": [
            {"_id": f"6a0b{index:020d}", "name": name, "hidden": False}
            for index, name in enumerate(authors)
        ],
        "publishedAt": "2026-05-04T00:00:00.000Z",
        "submittedOnDailyAt": "2026-05-05T03:00:00.000Z",
        "title": title,
        "summary": abstract,
        "upvotes": upvotes,
        "discussionId": f"6a0b{arxiv_id.replace('.', '')}",
    }
    if ai_summary is not None:
        paper["ai_summary"] = ai_summary
    if ai_keywords is not None:
        paper["ai_keywords"] = ai_keywords
    if github is not None:
        paper["githubRepo"] = github
    if project is not None:
        paper["projectPage"] = project
    item: dict[str, Any] = {
        "paper": paper,
        "publishedAt": paper["publishedAt"],
        "title": title,
        "summary": abstract,
        "numComments": 0,
        "isAuthorParticipating": False,
    }
    if thumbnail is not None:
        item["thumbnail"] = thumbnail
    return item


# Each field carries several hostile sequences, short enough to be shown whole; the AI summary
# of the first paper and the abstract of the second (which has no AI summary, so its abstract
# is what cards show) carry all of them. Line-start markdown starts the fields.
HOSTILE_DAY = [
    hf_item(
        "2605.09001",
        f"# heading Quokka <!channel> <!here> <!everyone> @everyone *bold* ~s~ & {WORD}",
        abstract="An abstract the cards don't show: the AI summary wins.",
        ai_summary=f"-# subtext {EVERYTHING}",
        ai_keywords=[WORD, "<!channel>", "@everyone", "[click](https://evil.example)"],
        authors=["<@U123>", "@here", "> quote"],
        upvotes=900,
        github="https://evil.example/<!channel>|click>",
        project="https://evil.example/a)[x](https://evil.example",
        thumbnail="https://evil.example/t.png?<!here>|x",
    ),
    hf_item(
        "2605.09002",
        f"-# subtext Quokka <@U123> <#C123> <!subteam^S123> <@&123456> <@123456> _it_ {WORD}",
        abstract=f"> quote {EVERYTHING}",
        ai_keywords=[WORD, "<@U123>"],
        authors=["<!subteam^S123>", "<@&123456>", "@everyone"],
        upvotes=800,
    ),
    hf_item(
        "2605.09003",
        f"<https://evil.example|click> [click](https://evil.example) https://evil.example "
        f"||spoiler|| `code` ``` {WORD}",
        abstract="Plain.",
        ai_summary=f"# heading <!here> <@123456> *bold* _it_ ~s~ ``` ||spoiler|| {WORD}",
        ai_keywords=[WORD],
        authors=["[click](https://evil.example)", "*bold* _it_ ~s~", "<!everyone> <#C123>"],
        upvotes=700,
    ),
]
HOSTILE_IDS = [item["paper"]["id"] for item in HOSTILE_DAY]


async def serve_hostile_papers(store: Store, fake_hf: FakeHuggingFace) -> None:
    """The fake Hugging Face now lists only the hostile papers on DAY; ingest that list."""
    fake_hf.days[DAY] = HOSTILE_DAY
    async with HuggingFaceClient(fake_hf.base_url, timeout=2.0, max_retries=0) as client:
        counts = await ingest_days(store, client, date.fromisoformat(DAY),
                                   date.fromisoformat(DAY), NOW)  # fmt: skip
    assert counts == {date.fromisoformat(DAY): len(HOSTILE_DAY)}


async def paper_post_ids(store: Store) -> list[str]:
    """The platform message ids of the single-paper messages posted so far, in order."""
    async with store.transaction() as repos:
        return list((await repos.session.scalars(select(Post.message_id).order_by(Post.id))).all())


# --- Slack ------------------------------------------------------------------------------------

# The bot's own mrkdwn links: a Hugging Face paper page, a label without `<`, `>` or `|`.
SLACK_OWN_LINK = re.compile(r"<https://huggingface\.co/papers/[0-9.]+\|[^<>|]*>")
SLACK_ENTITY = re.compile(r"&(?!amp;|lt;|gt;)")
URL_KEYS = frozenset({"url", "image_url"})


def slack_strings(payload: Any, key: str = "") -> Iterator[tuple[str, str]]:
    """(key, text) for every string in a Web API payload, blocks sent as JSON text included."""
    if isinstance(payload, dict):
        for name, value in payload.items():
            if name == "blocks" and isinstance(value, str):
                value = json.loads(value)  # form-encoded calls carry blocks as JSON text
            yield from slack_strings(value, name)
    elif isinstance(payload, list):
        for value in payload:
            yield from slack_strings(value, key)
    elif isinstance(payload, str):
        yield key, payload


def assert_slack_inert(payload: Any, *, shared_by: str | None = None) -> str:
    """No control sequence but the bot's own, every `&` an entity, URLs encoded; returns all
    the text for further checks."""
    texts = []
    for key, text in slack_strings(payload):
        if key in URL_KEYS:
            assert text.startswith("https://") and not re.search(r"[<>|\s]", text), text
            continue
        if key not in ("text", "alt_text", "value"):
            continue
        rest = SLACK_OWN_LINK.sub("", text)
        if shared_by is not None:
            rest = rest.replace(f"Shared by <@{shared_by}>", "")
        assert "<" not in rest and ">" not in rest, (key, text)
        assert not SLACK_ENTITY.search(text), (key, text)
        texts.append(text)
    return "\n".join(texts)


def assert_slack_shows_hostile_text(text: str) -> None:
    """The hostile text is shown, escaped, not silently dropped."""
    for escaped in ("&lt;!channel&gt;", "&lt;@U123&gt;", "&lt;#C123&gt;", "&lt;!subteam^S123&gt;",
                    "&lt;@&amp;123456&gt;", "&lt;https://evil.example"):  # fmt: skip
        assert escaped in text, escaped


@pytest.fixture
def fast_slack(slack_harness: SlackHarness) -> SlackHarness:
    """The harness with Slack's 1 s per-channel pacing off, so a daily post takes no time."""
    slack_harness.slack.outbound.pacer = SlackPacer(channel_interval=0, workspace_rate=100)
    return slack_harness


async def test_slack_every_flow_escapes_hostile_paper_text(
    fast_slack: SlackHarness, fake_hf: FakeHuggingFace
) -> None:
    slack = fast_slack
    await serve_hostile_papers(slack.store, fake_hf)
    slack.fake.admins.add("U1")
    flows: dict[str, Any] = {}

    # The daily channel post: a header, then one message per paper (best first).
    assert "Posted 3" in json.dumps(await slack.command("channel post-now"))
    daily = slack.posted("C1")
    assert len(daily) == 4
    flows |= {"header": daily[0], "paper 1": daily[1], "paper 2": daily[2], "paper 3": daily[3]}
    # Answers on the response_url.
    flows["today"] = await slack.command("today")
    flows["topic"] = await slack.command(f"topic {WORD}")
    # The DM digest of a followed topic (before the save below: a saved paper is not news).
    await slack.command(f"follow {WORD}")
    assert "digest of 3" in json.dumps(await slack.command("digest now"))
    [flows["digest"]] = slack.posted("DU1")
    # Saving the third paper (links and backticks in its title) by reaction.
    third = (await paper_post_ids(slack.store))[2]
    assert (await slack.react(third, event_id="EvHostile")).status_code == 200
    [confirmation] = await slack.fake.wait_for_calls("chat.postEphemeral", 1)
    flows["confirmation"] = confirmation.args
    flows["saved"] = await slack.command("saved")
    flows["export"] = await slack.command("export bibtex")
    # Someone else shares the topic answer to the channel.
    name = await slack.click(SHARE_ACTION, f"topic {WORD}", user="U7")
    await slack.fake.wait_for_responses(name, timeout=10)
    [shared] = slack.posted("C1")[len(daily) :]

    texts = {flow: assert_slack_inert(payload) for flow, payload in flows.items()}
    texts["share"] = assert_slack_inert(shared, shared_by="U7")
    assert "Shared by <@U7>" in texts["share"]
    for flow in ("paper 1", "paper 2", "today", "topic", "digest", "share"):
        assert_slack_shows_hostile_text(texts[flow])
    for flow in ("paper 3", "confirmation", "saved", "export"):
        assert "&lt;https://evil.example" in texts[flow] and WORD in texts[flow], flow
    # Every card title links to its paper's Hugging Face page: the only links in the messages.
    for flow in ("today", "topic", "digest", "share"):
        linked = re.findall(r"<https://huggingface\.co/papers/([0-9.]+)\|", texts[flow])
        assert linked == HOSTILE_IDS, flow
    # The export's code block is opened and closed once: the title's ``` is broken up.
    [code] = [b["text"]["text"] for b in flows["export"]["blocks"] if "```" in b["text"]["text"]]
    assert code.count("```") == 2 and code.endswith("\n```") and "`\u200b`\u200b`" in code


# --- Discord ----------------------------------------------------------------------------------

EPHEMERAL = 1 << 6
ZWSP = "\u200b"
# What Discord would read as markup once escapes and code spans are taken out.
ESCAPE_OR_CODE = re.compile(r"\\.|`[^`]*`", re.DOTALL)
BARE_URL = re.compile(r"https?://[\w\-.~:/?#@!$&'+,;=%]+", re.IGNORECASE)
RAW_MENTION = re.compile(r"@(everyone|here)|<@[!&]?\d+>|<#\d+>")
LINE_MARKER = re.compile(r"^[^\S\n]*(?:[#>*+-]|\d+\.(?:\s|$))", re.MULTILINE)
# The bot's own masked links under a card: fixed labels, percent-encoded http(s) targets.
DISCORD_OWN_LINK = re.compile(r"\[(arXiv|PDF|Code|Project page)\]\(https?://[^\s()<>\[\]\\]+\)")


def discord_data(call: Call) -> dict[str, Any]:
    """The message a call sends: an interaction callback's `data`, or the body itself."""
    body = call.json if isinstance(call.json, dict) else {}
    return body.get("data") or {} if "callback" in call.path else body


def sent_messages(fake: FakeDiscord, start: int = 0) -> list[Call]:
    """Every call since `start` that puts or edits a message on Discord."""
    return [
        call
        for call in fake.calls[start:]
        if call.method in ("POST", "PATCH")
        and re.search(r"/messages$|/messages/[^/]+$|/callback$|^/webhooks/\d+/[^/]+$", call.path)
        and call.status < 400
    ]


def discord_fields(message: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, text) for content and every embed text Discord renders as markdown; footers
    and embed URLs separately (footers render no markdown)."""
    yield "content", message.get("content") or ""
    for embed in message.get("embeds") or []:
        yield "title", embed.get("title") or ""
        yield "description", embed.get("description") or ""
        for field in embed.get("fields") or []:
            yield f"field {field['name']}", field["value"]
        yield "footer", (embed.get("footer") or {}).get("text") or ""


def assert_discord_inert(call: Call, *, shared_by: int | None = None) -> str:
    """Mentions off, no raw mention syntax, no live paper markdown, no foreign masked link,
    URLs encoded; returns the message's text."""
    message = discord_data(call)
    assert message.get("allowed_mentions") == {"parse": []}, (call.path, message)
    texts = []
    for where, text in discord_fields(message):
        if shared_by is not None and where == "content":
            text = text.replace(f"Shared by <@{shared_by}>", "", 1)
        assert not RAW_MENTION.search(text), (where, text)
        if where == "footer":
            continue
        live = BARE_URL.sub("", DISCORD_OWN_LINK.sub("", ESCAPE_OR_CODE.sub("", text)))
        for char in "*_~|`[]<>":
            assert char not in live, (where, char, text)
        assert not LINE_MARKER.search(ESCAPE_OR_CODE.sub("x", text)), (where, text)
        texts.append(text)
    for embed in message.get("embeds") or []:
        for url in (embed.get("url"), (embed.get("thumbnail") or {}).get("url")):
            assert url is None or not re.search(r"[<>|\s()\[\]]", url), url
        if embed.get("url"):
            assert embed["url"].startswith("https://huggingface.co/papers/"), embed["url"]
    return "\n".join(texts)


def assert_discord_shows_hostile_text(text: str) -> None:
    """The hostile text is shown, escaped, not silently dropped."""
    for escaped in (f"@{ZWSP}everyone", f"@{ZWSP}here", r"\*bold\*", r"\_it\_", r"\~s\~",
                    r"\|\|spoiler\|\|", r"\<!channel\>", "\\<" + ZWSP + "@U123\\>"):  # fmt: skip
        assert escaped in text, escaped


async def test_discord_every_flow_disables_mentions_and_escapes_paper_markdown(
    discord_harness: DiscordHarness, fake_hf: FakeHuggingFace
) -> None:
    discord = discord_harness
    fake = discord.fake
    await serve_hostile_papers(discord.store, fake_hf)
    flows: dict[str, Call] = {}

    flows["post-now"] = await discord.command("channel post-now", admin=True)
    assert "Posted 3" in discord_data(flows["post-now"])["content"]
    daily = fake.calls_to("POST", rf"/channels/{CHANNEL_ID}/messages")
    assert len(daily) == 4
    flows |= {"header": daily[0], "paper 1": daily[1], "paper 2": daily[2], "paper 3": daily[3]}
    flows["today"] = await discord.command("today")
    flows["topic"] = await discord.command("topic", words=WORD)
    # The DM digest of a followed topic (before the save below: a saved paper is not news).
    await discord.command("follow", topic=WORD)
    assert "digest of 3" in discord_data(await discord.command("digest now"))["content"]
    dm_messages = rf"/channels/{fake.dm_channel_for(USER_ID)['id']}/messages"
    [flows["digest"]] = fake.calls_to("POST", dm_messages)
    # Saving the third paper (links and backticks in its title) by reaction: confirmed by DM.
    third = int((await paper_post_ids(discord.store))[2])
    start = len(fake.calls)
    await fake.dispatch("MESSAGE_REACTION_ADD", reaction_add(message_id=third))
    flows["confirmation"] = await fake.wait_for_call(
        lambda c: c.matches("POST", dm_messages), start=start
    )
    flows["saved"] = await discord.command("saved")
    # Someone else shares the topic answer to the channel.
    answer = next(m for m in fake.messages[CHANNEL_ID] if "share:topic" in json.dumps(m))
    other = USER_ID + 7
    start = len(fake.calls)
    await fake.interact(component(f"share:topic {WORD}", message=answer, user_id=other))
    shared = await fake.wait_for_call(
        lambda c: c.method == "POST" and c.path.startswith("/webhooks/"), start=start
    )

    # Every message the bot sent or edited, whatever the flow, is inert.
    sent = sent_messages(fake)
    checked = 0
    for call in sent:
        if call.path.endswith("/callback") and call.json["type"] in (5, 6, 8):
            continue  # "thinking...", a silent acknowledgement, autocomplete choices
        assert_discord_inert(call, shared_by=other if call is shared else None)
        checked += 1
    assert checked >= len(flows) + 2  # and the follow answer and the share's "Shared" edit
    texts = {flow: assert_discord_inert(call) for flow, call in flows.items()}
    texts["share"] = assert_discord_inert(shared, shared_by=other)
    assert discord_data(shared)["content"].startswith(f"Shared by <@{other}>")
    assert not (discord_data(shared).get("flags") or 0) & EPHEMERAL
    assert_discord_shows_hostile_text(texts["paper 1"] + texts["paper 2"])
    for flow in ("today", "topic", "digest", "share"):
        assert_discord_shows_hostile_text(texts[flow])
    for flow in ("paper 3", "confirmation", "saved"):
        assert r"\<https://evil.example\|click\>" in texts[flow], flow
        assert r"\[click\](https://evil.example)" in texts[flow], flow
    # Paper text adds no masked link; the Links fields keep ours, with hostile URLs encoded.
    links = DISCORD_OWN_LINK.findall(texts["paper 1"] + texts["paper 2"] + texts["paper 3"])
    assert links == ["arXiv", "PDF", "Code", "Project page", "arXiv", "PDF", "arXiv", "PDF"]
    assert "[Code](https://evil.example/%3C!channel%3E%7Cclick%3E)" in texts["paper 1"]
    titles = [embed["url"] for embed in discord_data(flows["topic"])["embeds"]]
    assert titles == [f"https://huggingface.co/papers/{arxiv_id}" for arxiv_id in HOSTILE_IDS]
