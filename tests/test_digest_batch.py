"""Batched digest composition gives every user exactly the digest the one-user composition
gave before batching, on SQLite and PostgreSQL; the window cache never hides a new list."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, select

import bot.digest
import storage.db
import storage.papers
from bot.cards import demo_note, paper_card
from bot.digest import (
    WINDOW,
    Digest,
    WindowCache,
    compose_digest,
    compose_digests,
    digest_heading,
)
from bot.events import Scope, UserRef
from bot.messages import Message, Visibility
from bot.words import search_terms
from storage.models import DigestItem, Follow, Paper
from storage.papers import PaperData
from storage.store import Repositories, Store
from tests.core_fixtures import NOW, SCOPE, stocked
from tests.fakes.huggingface import FakeHuggingFace

OTHER_WORKSPACE = Scope("test", "T2")
DISCORD = Scope("discord", "T1")  # same workspace and user ids, another platform

FOLLOWS: dict[UserRef, tuple[str, ...]] = {
    UserRef(SCOPE, "alice"): ("diffusion", "kv cache"),
    UserRef(SCOPE, "bob"): ("diffusion", "agents", "retrieval"),  # overlaps alice
    UserRef(SCOPE, "dave"): ("speculative decoding",),  # some already sent
    UserRef(SCOPE, "erin"): ("latency",),  # everything matching already sent
    UserRef(SCOPE, "frank"): ("quantum chromodynamics", "***"),  # matches nothing
    UserRef(SCOPE, "grace"): ("KV-Cache", "models"),  # same search terms as "kv cache"
    UserRef(OTHER_WORKSPACE, "alice"): ("agents",),  # same user id, another workspace
    UserRef(DISCORD, "alice"): ("retrieval", "speculative decoding"),
}
SENT: dict[UserRef, tuple[str, ...]] = {
    UserRef(SCOPE, "dave"): ("2605.00001",),
    UserRef(SCOPE, "bob"): ("2605.00103", "2605.00104"),
    UserRef(SCOPE, "erin"): (
        "2605.00001", "2605.00002", "2605.00003", "2605.00004", "2605.00005",
        "2605.00101", "2605.00102", "2605.00103", "2605.00104",
    ),
    UserRef(OTHER_WORKSPACE, "bob"): ("2605.00003",),  # not T1's bob
}  # fmt: skip
# Saves, latest last: their papers' first AI keywords act as followed topics.
SAVES: dict[UserRef, tuple[str, ...]] = {
    UserRef(SCOPE, "alice"): ("2605.00003",),  # diffusion models, memorization, retrieval
    UserRef(SCOPE, "henry"): ("2605.00103", "2605.00001"),  # saves and follows nothing
    UserRef(SCOPE, "erin"): ("2605.00101",),  # everything matching already sent
}
NOBODY = (UserRef(SCOPE, "carol"), UserRef(OTHER_WORKSPACE, "zed"))  # follow nothing
# NOW: both lists in either window; +3 days: the daily window holds only the 5 May list;
# +6 days: no list in the daily window, which falls back to the newest list.
MOMENTS = (NOW, NOW + timedelta(days=3), NOW + timedelta(days=6))


async def reference_digest(
    repos: Repositories, user: UserRef, cadence: str, now: datetime
) -> Digest | None:
    """The one-user composition, query for query, as it was before batching (plus the
    keywords of saves): the oracle."""
    scope = user.scope
    topics = tuple(await repos.users.following(scope.platform, scope.workspace, user.user))
    every_save = await repos.users.saved(scope.platform, scope.workspace, user.user)
    saves = every_save[: bot.digest.RECENT_SAVES]
    keywords = tuple(
        dict.fromkeys(
            k.lower() for paper in saves for k in paper.ai_keywords[: bot.digest.KEYWORDS_PER_SAVE]
        )
    )
    if not topics and not saves:
        return None
    last = now.date()
    candidate_ids = await repos.papers.listed_between(last - WINDOW[cadence], last)
    if not candidate_ids:
        newest = await repos.papers.latest_listing_day()
        if newest is None:
            return None
        candidate_ids = await repos.papers.listed_between(newest, newest)
    sent_to = await repos.users.already_sent_many(
        scope.platform, scope.workspace, [user.user], candidate_ids
    )
    sent = sent_to.get(user.user, set())
    sent |= {paper.id for paper in every_save}
    fresh = [pid for pid in candidate_ids if pid not in sent]
    candidates = sorted(
        (await repos.papers.by_ids(fresh)).values(),
        key=lambda paper: (paper.upvotes or 0, paper.id),
        reverse=True,
    )
    ids = [paper.id for paper in candidates]
    on_topic: dict[str, set[int]] = {}
    for topic in topics:  # one ranked search per topic, as before batching
        hits = await repos.papers.search(search_terms(topic), limit=len(ids), within=ids)
        on_topic[topic] = {hit.id for hit in hits}
    on_topics = set().union(*on_topic.values())
    like_saved: set[int] = set()
    for keyword in keywords:
        hits = await repos.papers.search(search_terms(keyword), limit=len(ids), within=ids)
        like_saved.update(hit.id for hit in hits)
    # Followed topics first, then papers like the saves; each by upvotes.
    papers = [paper for paper in candidates if paper.id in on_topics]
    papers += [paper for paper in candidates if paper.id in like_saved - on_topics]
    papers = papers[: bot.digest.MAX_PAPERS]
    if not papers:
        return None
    cards = tuple(paper_card(paper) for paper in papers)
    chosen = {paper.id for paper in papers}
    message = Message(
        text=digest_heading(
            len(papers),
            [topic for topic in topics if on_topic[topic] & chosen],
            like_saved=any(paper.id not in on_topics for paper in papers),
        ),
        cards=cards,
        note=demo_note(cards)
        or "Change topics with `/papers follow` / `unfollow`, timing with `/papers digest`.",
        visibility=Visibility.PUBLIC,
    )
    return Digest(message, tuple(paper.id for paper in papers))


async def paper_ids(repos: Repositories) -> dict[str, int]:
    result = await repos.session.execute(select(Paper.arxiv_id, Paper.id))
    return {arxiv_id: paper_id for arxiv_id, paper_id in result}


async def set_up_users(store: Store) -> None:
    async with store.transaction() as repos:
        ids = await paper_ids(repos)
        for user, topics in FOLLOWS.items():
            for topic in topics:
                await repos.users.follow(
                    user.scope.platform, user.scope.workspace, user.user, topic, NOW
                )
        for user, arxiv_ids in SENT.items():
            await repos.users.record_sent(
                user.scope.platform, user.scope.workspace, user.user,
                [ids[a] for a in arxiv_ids], NOW,
            )  # fmt: skip
        for user, arxiv_ids in SAVES.items():
            for minute, arxiv_id in enumerate(arxiv_ids):
                await repos.users.save(
                    user.scope.platform, user.scope.workspace, user.user, ids[arxiv_id],
                    NOW + timedelta(minutes=minute),
                )  # fmt: skip


EVERY_CASE = [(cadence, now) for cadence in ("daily", "weekly") for now in MOMENTS]


@pytest.mark.parametrize(
    ("in_chunk", "max_papers", "cases"),
    [(None, 10, EVERY_CASE), (2, 2, [("daily", MOMENTS[2]), ("weekly", NOW)])],
    ids=["plain", "tiny"],
)
async def test_batch_gives_every_user_their_one_user_digest(
    store: Store,
    fake_hf: FakeHuggingFace,
    monkeypatch: pytest.MonkeyPatch,
    in_chunk: int | None,
    max_papers: int,
    cases: list[tuple[str, datetime]],
) -> None:
    # "tiny" splits every IN list and every batch of topic matches into pairs, and cuts
    # digests short, so chunking and the MAX_PAPERS cut are exercised on this small store.
    if in_chunk is not None:
        monkeypatch.setattr(storage.db, "IN_CHUNK", in_chunk)
        monkeypatch.setattr(storage.papers, "TERM_SETS_PER_STATEMENT", in_chunk)
    monkeypatch.setattr(bot.digest, "MAX_PAPERS", max_papers)
    async with stocked(store, fake_hf):
        await set_up_users(store)
    users = [*FOLLOWS, *SAVES, *NOBODY, UserRef(SCOPE, "alice")]  # a duplicate: composed once
    for cadence, now in cases:
        cache = WindowCache()
        async with store.transaction() as repos:
            expected = {u: await reference_digest(repos, u, cadence, now) for u in users}
            cold = await compose_digests(repos, users, cadence, now, cache=cache)
            warm = await compose_digests(repos, users, cadence, now, cache=cache)
            # As scheduled digests are composed: one at a time, on the cached window.
            one_by_one = {
                u: await compose_digest(repos, u, cadence, now, cache=cache) for u in users
            }
        assert cold == expected, (cadence, now)
        assert warm == expected and one_by_one == expected
        assert list(cold) == list(dict.fromkeys(users))
        # The mix really is mixed: some get a digest, some do not.
        nothing_new = {*NOBODY, UserRef(SCOPE, "erin"), UserRef(SCOPE, "frank")}
        assert {u for u, d in cold.items() if d is None} >= nothing_new
        assert cold[UserRef(SCOPE, "alice")] is not None
        assert cold[UserRef(SCOPE, "henry")] is not None  # saves alone make a digest
        assert cold[UserRef(SCOPE, "alice")] != cold[UserRef(OTHER_WORKSPACE, "alice")]


async def test_a_thousand_users_compose_in_one_batch(
    store: Store, fake_hf: FakeHuggingFace
) -> None:
    """More users than one IN list takes, set up with bulk inserts as a large install is."""
    topics = ["diffusion", "kv cache", "agents", "retrieval", "latency", "speculative decoding",
              "models", "scaling laws", "memorization", "nothing like it"]  # fmt: skip
    async with stocked(store, fake_hf):
        pass
    users = [UserRef(SCOPE if i % 3 else OTHER_WORKSPACE, f"u{i}") for i in range(1000)]
    async with store.transaction() as repos:
        ids = sorted((await paper_ids(repos)).values())
        follows = [
            {"platform": u.scope.platform, "workspace": u.scope.workspace, "user": u.user,
             "topic": topics[(i * k) % len(topics)], "created_at": NOW}
            for i, u in enumerate(users) for k in (1, 3, 7) if i % 10
        ]  # fmt: skip
        sent = [
            {"platform": u.scope.platform, "workspace": u.scope.workspace, "user": u.user,
             "paper_id": ids[i % len(ids)], "sent_at": NOW}
            for i, u in enumerate(users) if i % 2
        ]  # fmt: skip
        await repos.session.execute(insert(Follow), _unique(follows))
        await repos.session.execute(insert(DigestItem), sent)
    async with store.transaction() as repos:
        digests = await compose_digests(repos, users, "daily", NOW, cache=None)
        sample = users[::37]
        expected = {u: await reference_digest(repos, u, "daily", NOW) for u in sample}
    assert {u: digests[u] for u in sample} == expected
    assert len(digests) == 1000
    assert sum(d is None for d in digests.values()) >= 100  # every tenth follows nothing
    assert sum(d is not None for d in digests.values()) > 500


def _unique(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    """Follow rows without repeats of one (user, topic), which the primary key forbids."""
    keyed = {(r["platform"], r["workspace"], r["user"], r["topic"]): r for r in rows}
    return list(keyed.values())


async def test_the_window_cache_never_hides_a_new_list(
    store: Store, fake_hf: FakeHuggingFace
) -> None:
    alice = UserRef(SCOPE, "alice")
    clock = [0.0]
    cache = WindowCache(ttl=60.0, clock=lambda: clock[0])
    async with stocked(store, fake_hf):
        await set_up_users(store)
    async with store.transaction() as repos:
        before = await compose_digest(repos, alice, "daily", NOW, cache=cache)
    assert before is not None
    # A list comes in for a day in the window: the very next digest, same cache, has it.
    # A matching paper stored in between (found by a search) is in no list: never in.
    async with store.transaction() as repos:
        await repos.papers.upsert([PaperData("2605.09998", "Unlisted Diffusion")], NOW)
        ids = await repos.papers.upsert(
            [PaperData("2605.09999", "Diffusion for Everyone", upvotes=999)], NOW
        )
        await repos.papers.record_listing(date(2026, 5, 3), [(ids["2605.09999"], 999)])
    async with store.transaction() as repos:
        after = await compose_digest(repos, alice, "daily", NOW, cache=cache)
        expected = await reference_digest(repos, alice, "daily", NOW)
    assert after == expected and after is not None
    assert after.message.cards[0].paper_id == "2605.09999"
    assert "2605.09998" not in {card.paper_id for card in after.message.cards}


async def test_the_window_cache_holds_paper_changes_back_for_its_ttl_only(
    store: Store, fake_hf: FakeHuggingFace
) -> None:
    alice = UserRef(SCOPE, "alice")
    clock = [0.0]
    cache = WindowCache(ttl=60.0, clock=lambda: clock[0])
    async with stocked(store, fake_hf):
        await set_up_users(store)
    async with store.transaction() as repos:
        first = await compose_digest(repos, alice, "daily", NOW, cache=cache)
    assert first is not None
    # The last of the three on her topics (papers like her saves follow): 0 upvotes.
    assert first.message.cards[2].paper_id == "2605.00004"
    async with store.transaction() as repos:  # the same list, refreshed: new upvotes
        await repos.papers.upsert([PaperData("2605.00004", "", upvotes=500)], NOW)
    clock[0] = 59.0
    async with store.transaction() as repos:
        assert await compose_digest(repos, alice, "daily", NOW, cache=cache) == first
    clock[0] = 61.0
    async with store.transaction() as repos:
        later = await compose_digest(repos, alice, "daily", NOW, cache=cache)
        expected = await reference_digest(repos, alice, "daily", NOW)
    assert later == expected and later is not None
    assert later.message.cards[0].paper_id == "2605.00004"


async def test_each_store_has_its_own_cached_windows(
    database_url: str, fake_hf: FakeHuggingFace, tmp_path: Path
) -> None:
    """Two stores with the same ids and days (tests, or two bots in one process) never
    share a window."""
    alice = UserRef(SCOPE, "alice")
    cache = WindowCache()
    first = await Store.open(database_url)
    second = await Store.open(f"sqlite+aiosqlite:///{tmp_path}/second.db")
    try:
        async with stocked(first, fake_hf):
            await set_up_users(first)
        async with stocked(second, fake_hf):
            await set_up_users(second)
        async with second.transaction() as repos:  # same listings, other upvotes
            await repos.papers.upsert([PaperData("2605.00004", "", upvotes=500)], NOW)
        async with first.transaction() as repos:
            one = await compose_digest(repos, alice, "daily", NOW, cache=cache)
        async with second.transaction() as repos:
            two = await compose_digest(repos, alice, "daily", NOW, cache=cache)
            expected = await reference_digest(repos, alice, "daily", NOW)
        assert two == expected and one != two
    finally:
        await first.close()
        await second.close()


def test_a_digest_window_covers_a_weekend_or_a_week() -> None:
    now = datetime(2026, 5, 4, 9, tzinfo=UTC)  # a Monday
    assert bot.digest.window_days(now, "daily") == (date(2026, 5, 1), date(2026, 5, 4))
    assert bot.digest.window_days(now, "weekly") == (date(2026, 4, 26), date(2026, 5, 4))


def test_a_digest_heading_names_the_matched_topics_and_stays_short() -> None:
    assert (
        digest_heading(1, ["llm"], like_saved=False) == "Your paperboy digest: 1 new paper on llm"
    )
    assert (
        digest_heading(3, ["llm", "agents"], like_saved=True)
        == "Your paperboy digest: 3 new papers on llm, agents and like ones you saved"
    )
    assert digest_heading(2, [], like_saved=True) == (
        "Your paperboy digest: 2 new papers like ones you saved"
    )
    many = [f"a topic of many words number {n}" for n in range(12)]
    heading = digest_heading(10, many, like_saved=True)
    assert len(heading) <= 150
    assert heading.startswith(
        "Your paperboy digest: 10 new papers on a topic of many words number 0"
    )
    shown = heading.count("a topic of many words")
    assert f"and {len(many) - shown} more topics and like ones you saved" in heading
