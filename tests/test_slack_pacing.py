"""Pacing Slack posts: the pacer's arithmetic on a fake clock, the fake Slack's limits, and a
1,000-channel morning through the real scheduler, SlackOutbound and HTTP that trips none."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from datetime import timedelta
from itertools import pairwise
from pathlib import Path

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import func, select

from adapters.slack.outbound import SlackOutbound
from adapters.slack.pacing import FORGET_EVERY, MAX_SLOWDOWN, RECOVERY, Claim, SlackPacer
from bot.app import Paperboy
from bot.config import BotConfig
from bot.delivery.runner import DeliveryPolicy
from bot.events import ChannelRef, CommandInvoked, Scope, UserRef
from bot.messages import Message
from storage.models import Delivery, Post
from storage.store import Store
from tests.core_fixtures import NOW, stocked
from tests.fakes.huggingface import FakeHuggingFace
from tests.fakes.slack import BOT_TOKEN, FakeSlack, Posted, RateLimited


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# The pacer's arithmetic ------------------------------------------------------------------


def test_a_workspace_gets_its_burst_then_the_steady_rate() -> None:
    pacer = SlackPacer(clock=Clock(), workspace_rate=4.0, workspace_burst=4)
    slots = [pacer.claim("T1", f"C{n}") for n in range(7)]
    assert slots == [Claim(at, True) for at in (0.0, 0.0, 0.0, 0.0, 0.25, 0.5, 0.75)]
    assert pacer.claim("T2", "C0") == Claim(0.0, True)  # another workspace is paced apart


def test_a_slot_unused_while_idle_is_not_saved_up_beyond_the_burst() -> None:
    clock = Clock()
    pacer = SlackPacer(clock=clock, workspace_rate=4.0, workspace_burst=2)
    assert [pacer.claim("T1", f"C{n}").at for n in range(3)] == [0.0, 0.0, 0.25]
    clock.now = 60.0  # a quiet minute
    assert [pacer.claim("T1", f"D{n}").at for n in range(3)] == [60.0, 60.0, 60.25]


def test_a_channel_waits_its_interval_from_the_end_of_its_last_send() -> None:
    clock = Clock()
    pacer = SlackPacer(clock=clock, channel_interval=1.0, workspace_rate=10.0, workspace_burst=1)
    assert pacer.claim("T1", "C1") == Claim(0.0, True)
    assert pacer.claim("T1", "C1") == Claim(1.0, False)  # in flight: held a full interval
    clock.now = 0.3
    pacer.finished("T1", "C1")  # the send took 0.3 s
    assert pacer.claim("T1", "C1") == Claim(1.3, False)
    # A waiting channel takes no workspace slot: another channel is served meanwhile.
    assert pacer.claim("T1", "C2") == Claim(0.3, True)
    clock.now = 1.3
    assert pacer.claim("T1", "C1") == Claim(1.3, True)


def test_a_429_pauses_the_workspace_then_resumes_at_half_the_rate_winning_it_back() -> None:
    clock = Clock()
    pacer = SlackPacer(clock=clock, workspace_rate=4.0, workspace_burst=4)
    pacer.back_off("T1", 2.0)
    assert pacer.paused("T1") and not pacer.paused("T2")
    slots = [pacer.claim("T1", f"C{n}").at for n in range(40)]
    gaps = [b - a for a, b in pairwise(slots)]
    assert slots[:3] == pytest.approx([2.0, 2.5, 2.5 + 0.5 * RECOVERY])  # no burst, half rate
    assert all(a >= b for a, b in pairwise(gaps)) and gaps[-1] == pytest.approx(0.25)
    assert pacer.claim("T2", "C0") == Claim(0.0, True)  # other workspaces carry on
    clock.now = 2.0
    assert not pacer.paused("T1")


def test_429s_within_one_pause_halve_the_rate_once_and_never_below_the_floor() -> None:
    clock = Clock()
    pacer = SlackPacer(clock=clock, workspace_rate=4.0, workspace_burst=1)
    for _ in range(3):  # three sends in flight refused together
        pacer.back_off("T1", 5.0)
    clock.now = 1.0
    pacer.back_off("T1", 1.0)  # a shorter Retry-After does not shorten the pause either
    first, second = pacer.claim("T1", "C1").at, pacer.claim("T1", "C2").at
    assert (first, second - first) == (5.0, 0.5)
    for _ in range(10):  # a pause after each pause
        clock.now = pacer.claim("T1", "C3").at + 1.0
        pacer.back_off("T1", 1.0)
    first, second = pacer.claim("T1", "C4").at, pacer.claim("T1", "C5").at
    assert second - first == 0.25 * MAX_SLOWDOWN


def test_idle_channels_and_workspaces_are_forgotten() -> None:
    clock = Clock()
    pacer = SlackPacer(clock=clock, workspace_rate=100.0, workspace_burst=10)
    for team in range(10):
        for channel in range(100):
            pacer.claim(f"T{team}", f"C{channel}")
            pacer.finished(f"T{team}", f"C{channel}")
    pacer.back_off("T0", 1.0)
    assert (len(pacer._channels), len(pacer._workspaces)) == (1000, 10)
    clock.now = 20.0 + FORGET_EVERY  # all of it is long past
    slots = [pacer.claim("T0", f"C{n}").at for n in range(11)]
    # As if never seen: a full burst at once, then the full rate again.
    assert slots == pytest.approx([clock.now] * 10 + [clock.now + 0.01])
    assert (len(pacer._channels), len(pacer._workspaces)) == (11, 1)


async def test_concurrent_sends_to_one_channel_keep_the_interval_between_them() -> None:
    pacer = SlackPacer(channel_interval=0.05, workspace_rate=1000.0, workspace_burst=10)
    spans: list[tuple[float, float]] = []

    async def send() -> None:
        async with pacer.turn("T1", "C1"):
            started = time.monotonic()
            await asyncio.sleep(0.01)
            spans.append((started, time.monotonic()))

    await asyncio.gather(*(send() for _ in range(5)))
    spans.sort()
    gaps = [start - end for (_, end), (start, _) in pairwise(spans)]
    assert len(spans) == 5 and min(gaps) >= 0.05 - 1e-3  # asyncio may wake a tick early


async def test_sends_waiting_for_a_slot_inside_a_pause_claim_a_new_one() -> None:
    pacer = SlackPacer(channel_interval=0.0, workspace_rate=10.0, workspace_burst=1)
    starts: list[float] = []

    async def send(channel: str) -> None:
        await pacer.wait("T1", channel)
        starts.append(time.monotonic())

    await send("C0")  # this one gets a 429 below
    waiting = [asyncio.create_task(send(f"C{n}")) for n in (1, 2)]  # slots 0.1 and 0.2 s on
    await asyncio.sleep(0)  # they have claimed their slots and sleep
    paused_at = time.monotonic()
    pacer.back_off("T1", 0.3)
    await asyncio.gather(*waiting)
    assert len(starts) == 3
    assert min(starts[1:]) >= paused_at + 0.3 - 1e-3  # asyncio may wake a tick early


# The fake's limits -------------------------------------------------------------------------


async def test_the_fake_refuses_posts_over_its_limits_and_delivers_the_rest(
    fake_slack: FakeSlack,
) -> None:
    fake_slack.enforce_limits(channel_interval=1.0, workspace_rate=0.5, workspace_burst=3)
    t1 = AsyncWebClient(token=BOT_TOKEN, base_url=fake_slack.api_url)
    t2 = AsyncWebClient(token=fake_slack.add_workspace("T2"), base_url=fake_slack.api_url)
    refused: list[tuple[str, str]] = []

    async def post(client: AsyncWebClient, channel: str) -> None:
        try:
            await client.chat_postMessage(channel=channel, text=f"to {channel}")
        except SlackApiError as error:
            assert error.response.status_code == 429
            refused.append((channel, error.response.headers["Retry-After"]))

    await post(t1, "C1")
    await post(t1, "C1")  # too soon in this channel
    await post(t1, "C2")
    await post(t1, "C3")  # the bucket of 3 is empty now
    await post(t1, "C4")
    await post(t2, "C1")  # another workspace, another bucket and other channels

    assert refused == [("C1", "1"), ("C4", "2")]
    assert [(p.team, p.channel) for p in fake_slack.delivered] == [
        ("T1", "C1"), ("T1", "C2"), ("T1", "C3"), ("T2", "C1"),
    ]  # fmt: skip
    assert [(r.team, r.channel, r.limit) for r in fake_slack.rate_limited] == [
        ("T1", "C1", "channel"), ("T1", "C4", "workspace"),
    ]  # fmt: skip
    assert len(fake_slack.calls("chat.postMessage")) == 6


async def test_dms_are_paced_by_their_im_channel(fake_slack: FakeSlack) -> None:
    fake_slack.enforce_limits(channel_interval=1.0)

    async def token_for(team: str) -> str | None:
        return BOT_TOKEN

    outbound = SlackOutbound(fake_slack.api_url, token_for)
    alice = UserRef(Scope("slack", "T1"), "U1")
    await asyncio.gather(*(outbound.send_dm(alice, Message(text=f"dm {n}")) for n in range(3)))

    assert [p.channel for p in fake_slack.delivered] == ["DU1"] * 3
    assert sorted(p.text for p in fake_slack.delivered) == ["dm 0", "dm 1", "dm 2"]
    assert fake_slack.rate_limited == []


# A morning of daily posts, end to end ---------------------------------------------------------


async def morning(
    tmp_path: Path,
    fake_slack: FakeSlack,
    fake_hf: FakeHuggingFace,
    pacer: SlackPacer,
    *,
    workspaces: int,
    channels: int,
    papers: int,
    concurrency: int,
) -> tuple[list[Delivery], int]:
    """Subscribe `channels` channels in each of `workspaces` workspaces to a daily post of
    `papers` papers at 09:00 UTC, then start a worker at 12:00: it catches up all of them
    through the real scheduler and SlackOutbound. The ledger's rows, and how many paper
    messages it recorded."""
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'paperboy.db'}")
    try:
        async with stocked(store, fake_hf):
            teams = [f"T{n:03d}" for n in range(workspaces)]
            tokens = {team: fake_slack.add_workspace(team) for team in teams}

            async def token_for(team: str) -> str | None:
                return tokens.get(team)

            outbound = SlackOutbound(fake_slack.api_url, token_for, pacer)
            clock = [NOW - timedelta(hours=5)]  # the admins set it up early in the morning
            bot = Paperboy(store, outbound, config=BotConfig(), clock=lambda: clock[0])
            text = f"channel on 09:00 UTC {papers}"
            for team in teams:
                for channel in range(channels):
                    where = ChannelRef(Scope("slack", team), f"C{team}{channel:03d}")
                    answer = await bot.handle_command(CommandInvoked(where, "UADMIN", text, True))
                    assert answer.text.startswith("Daily post on"), answer.text
            clock[0] = NOW
            worker = bot.scheduler(
                platform="slack",
                worker="w1",
                policy=DeliveryPolicy(concurrency=concurrency),
                clock=lambda: NOW,
            )
            try:
                await worker.resync(catch_up=True)
            finally:
                worker.shutdown()
        async with store.transaction() as repos:
            rows = list(await repos.session.scalars(select(Delivery)))
            recorded = await repos.session.scalar(select(func.count()).select_from(Post))
        return rows, recorded or 0
    finally:
        await store.close()


def assert_each_channel_got_its_post_once(
    fake: FakeSlack, rows: list[Delivery], recorded: int, *, expected: int, papers: int
) -> None:
    delivered = fake.delivered
    per_channel = Counter((p.team, p.channel) for p in delivered)
    assert len(per_channel) == expected  # no channel lost its post
    assert set(per_channel.values()) == {1 + papers}  # a header and its papers, no more
    distinct = {(p.team, p.channel, p.text, json.dumps(p.blocks)) for p in delivered}
    assert len(distinct) == len(delivered)  # and no message twice
    headers = [p for p in delivered if p.text.startswith("Trending papers")]
    assert Counter((p.team, p.channel) for p in headers) == Counter(per_channel.keys())
    assert len(rows) == expected and {row.status for row in rows} == {"sent"}
    assert sorted(row.message_ref or "" for row in rows) == sorted(p.ts for p in headers)
    assert recorded == expected * papers  # every paper message is known to the reactions


async def test_a_thousand_channel_morning_trips_no_limit_and_loses_nothing(
    tmp_path: Path, fake_slack: FakeSlack, fake_hf: FakeHuggingFace
) -> None:
    # Slack's 1 message/s per channel; its workspace limit scaled up so the run is short.
    fake_slack.enforce_limits(channel_interval=1.0, workspace_rate=20.0, workspace_burst=10)
    pacer = SlackPacer(channel_interval=1.0, workspace_rate=15.0, workspace_burst=2)

    rows, recorded = await morning(
        tmp_path, fake_slack, fake_hf, pacer,
        workspaces=50, channels=20, papers=1, concurrency=200,
    )  # fmt: skip

    assert fake_slack.rate_limited == []  # pacing kept every send under both limits
    assert len(fake_slack.calls("chat.postMessage")) == 1000 * 2  # so nothing was retried
    assert_each_channel_got_its_post_once(fake_slack, rows, recorded, expected=1000, papers=1)


async def test_429s_from_a_tighter_workspace_limit_are_honoured_and_lose_nothing(
    tmp_path: Path, fake_slack: FakeSlack, fake_hf: FakeHuggingFace
) -> None:
    # As if another process posted to the same workspaces: Slack allows less than we pace.
    fake_slack.enforce_limits(channel_interval=1.0, workspace_rate=6.0, workspace_burst=3)
    pacer = SlackPacer(channel_interval=1.0, workspace_rate=10.0, workspace_burst=5)

    rows, recorded = await morning(
        tmp_path, fake_slack, fake_hf, pacer,
        workspaces=4, channels=10, papers=1, concurrency=100,
    )  # fmt: skip

    refused = fake_slack.rate_limited
    assert refused and {r.limit for r in refused} == {"workspace"}
    assert_each_channel_got_its_post_once(fake_slack, rows, recorded, expected=40, papers=1)
    for refusal in refused:  # the refused message went again only after Retry-After (1 s)
        assert next_in_channel(fake_slack.delivered, refusal).at >= refusal.at + 1.0


def next_in_channel(delivered: list[Posted], refusal: RateLimited) -> Posted:
    return min(
        (p for p in delivered if (p.team, p.channel) == (refusal.team, refusal.channel)
         and p.at > refusal.at),
        key=lambda p: p.at,
    )  # fmt: skip
