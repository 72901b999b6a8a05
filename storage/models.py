"""Tables of the paperboy store. Identities are opaque strings scoped by (platform, workspace)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

JSONList = JSON().with_variant(JSONB(), "postgresql")

# Platform-scoped identities: Slack team/channel/user ids, Discord snowflakes, console names.
Ident = String(64)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime on every engine: everything we store is UTC, and SQLite hands
    values back naive, so they are marked UTC on the way out."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    if TYPE_CHECKING:
        # Every model names a table (`__tablename__`), so declarative maps each to a Table,
        # not just any FromClause: one a Core insert() can write to.
        __table__: ClassVar[Table]


class Paper(Base):
    __tablename__ = "papers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    arxiv_id: Mapped[str] = mapped_column(String(32), unique=True)
    title: Mapped[str] = mapped_column(Text)
    abstract: Mapped[str] = mapped_column(Text, default="")
    authors: Mapped[list[str]] = mapped_column(JSONList, default=list)
    ai_summary: Mapped[str | None] = mapped_column(Text)
    ai_keywords: Mapped[list[str]] = mapped_column(JSONList, default=list)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    upvotes: Mapped[int | None] = mapped_column(Integer)
    github_repo: Mapped[str | None] = mapped_column(Text)
    github_stars: Mapped[int | None] = mapped_column(Integer)
    project_page: Mapped[str | None] = mapped_column(Text)
    thumbnail: Mapped[str | None] = mapped_column(Text)
    organization: Mapped[str | None] = mapped_column(Text)
    is_demo: Mapped[bool] = mapped_column(Boolean, default=False)
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PaperVector(Base):
    """A paper's embedding (title and summary) by the sentence model `model`: DIMENSIONS
    float32 values, little-endian. On PostgreSQL with pgvector, `embedding` holds the same
    vector for the database's own index (see migration 0007)."""

    __tablename__ = "paper_vectors"

    paper_id: Mapped[int] = mapped_column(
        ForeignKey("papers.id", ondelete="CASCADE"), primary_key=True
    )
    model: Mapped[str] = mapped_column(String(64))
    vector: Mapped[bytes] = mapped_column(LargeBinary)

    __table_args__ = (Index("ix_paper_vectors_model", "model", "paper_id"),)


class DailyListing(Base):
    """One paper on one day's Daily Papers list, with its rank and upvotes when fetched."""

    __tablename__ = "daily_listings"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    paper_id: Mapped[int] = mapped_column(
        ForeignKey("papers.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    rank: Mapped[int] = mapped_column(Integer)
    upvotes: Mapped[int | None] = mapped_column(Integer)


class ChannelSubscription(Base):
    __tablename__ = "channel_subscriptions"
    __table_args__ = (UniqueConstraint("platform", "workspace", "channel"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    platform: Mapped[str] = mapped_column(String(16))
    workspace: Mapped[str] = mapped_column(Ident)
    channel: Mapped[str] = mapped_column(Ident)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    post_time: Mapped[str] = mapped_column(String(5))
    timezone: Mapped[str] = mapped_column(String(64))
    count: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(Ident)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    disabled_reason: Mapped[str | None] = mapped_column(String(200))
    days: Mapped[str] = mapped_column(String(32), default="mon-fri")  # cron day_of_week


class ChannelTopic(Base):
    __tablename__ = "channel_topics"

    subscription_id: Mapped[int] = mapped_column(
        ForeignKey("channel_subscriptions.id", ondelete="CASCADE"), primary_key=True
    )
    topic: Mapped[str] = mapped_column(String(100), primary_key=True)


class WeeklyPost(Base):
    """A channel's weekly team post: what the team saved and the week's trending papers it
    was not posted, once a week at a local time (bot.weekly)."""

    __tablename__ = "weekly_posts"

    platform: Mapped[str] = mapped_column(String(16), primary_key=True)
    workspace: Mapped[str] = mapped_column(Ident, primary_key=True)
    channel: Mapped[str] = mapped_column(Ident, primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    weekday: Mapped[int] = mapped_column(Integer)  # 0 = Monday
    post_time: Mapped[str] = mapped_column(String(5))
    timezone: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(Ident)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Set when the channel could not be reached; the post stays off until turned on again.
    disabled_reason: Mapped[str | None] = mapped_column(String(200))


class WeeklyItem(Base):
    """A paper a channel's weekly post carried, and when: a retry of that post after a
    failure mid-way sends only the papers not out yet (bot.weekly)."""

    __tablename__ = "weekly_items"

    platform: Mapped[str] = mapped_column(String(16), primary_key=True)
    workspace: Mapped[str] = mapped_column(Ident, primary_key=True)
    channel: Mapped[str] = mapped_column(Ident, primary_key=True)
    paper_id: Mapped[int] = mapped_column(
        ForeignKey("papers.id", ondelete="CASCADE"), primary_key=True
    )
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime)  # the latest time


class Post(Base):
    """A message the bot posted for one paper, so that reactions on it name that paper."""

    __tablename__ = "posts"
    __table_args__ = (
        UniqueConstraint("platform", "workspace", "channel", "message_id"),
        Index("ix_posts_channel_paper", "platform", "workspace", "channel", "paper_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    platform: Mapped[str] = mapped_column(String(16))
    workspace: Mapped[str] = mapped_column(Ident)
    channel: Mapped[str] = mapped_column(Ident)
    message_id: Mapped[str] = mapped_column(String(128))
    paper_id: Mapped[int] = mapped_column(ForeignKey("papers.id", ondelete="CASCADE"))
    posted_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Save(Base):
    __tablename__ = "saves"
    # A workspace's saves in a time window (`/papers team`), read from the index alone.
    __table_args__ = (
        Index("ix_saves_workspace_saved_at", "platform", "workspace", "saved_at", "paper_id"),
    )

    platform: Mapped[str] = mapped_column(String(16), primary_key=True)
    workspace: Mapped[str] = mapped_column(Ident, primary_key=True)
    user: Mapped[str] = mapped_column(Ident, primary_key=True)
    paper_id: Mapped[int] = mapped_column(
        ForeignKey("papers.id", ondelete="CASCADE"), primary_key=True
    )
    saved_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PendingSave(Base):
    """A paper a user asked to save (by link or id) that no source could give yet: saved when
    it can be fetched, retried a bounded number of times (bot.saving)."""

    __tablename__ = "pending_saves"
    __table_args__ = (Index("ix_pending_saves_arxiv_id", "arxiv_id"),)

    platform: Mapped[str] = mapped_column(String(16), primary_key=True)
    workspace: Mapped[str] = mapped_column(Ident, primary_key=True)
    user: Mapped[str] = mapped_column(Ident, primary_key=True)
    arxiv_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Answers that the paper is not known (a source that could not be reached counts none).
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    given_up_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # no more retries


class Follow(Base):
    __tablename__ = "follows"

    platform: Mapped[str] = mapped_column(String(16), primary_key=True)
    workspace: Mapped[str] = mapped_column(Ident, primary_key=True)
    user: Mapped[str] = mapped_column(Ident, primary_key=True)
    topic: Mapped[str] = mapped_column(String(100), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class DigestSetting(Base):
    __tablename__ = "digest_settings"

    platform: Mapped[str] = mapped_column(String(16), primary_key=True)
    workspace: Mapped[str] = mapped_column(Ident, primary_key=True)
    user: Mapped[str] = mapped_column(Ident, primary_key=True)
    cadence: Mapped[str] = mapped_column(String(8))  # "daily" or "weekly"
    weekday: Mapped[int | None] = mapped_column(Integer)  # 0 = Monday, weekly only
    send_time: Mapped[str] = mapped_column(String(5))
    timezone: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Set when the user's DMs could not be reached; scheduled digests skip them until they
    # set their digest again.
    disabled_reason: Mapped[str | None] = mapped_column(String(200))


class DigestItem(Base):
    """A paper already sent to a user in a digest; never sent to them again."""

    __tablename__ = "digest_items"
    # The oldest sends first, for forgetting papers no digest can offer again (0017).
    __table_args__ = (Index("ix_digest_items_sent_at", "sent_at"),)

    platform: Mapped[str] = mapped_column(String(16), primary_key=True)
    workspace: Mapped[str] = mapped_column(Ident, primary_key=True)
    user: Mapped[str] = mapped_column(Ident, primary_key=True)
    paper_id: Mapped[int] = mapped_column(
        ForeignKey("papers.id", ondelete="CASCADE"), primary_key=True
    )
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SavedLater(Base):
    """A pending save completed after its member was answered: they are told by DM once
    (`bot.saving.LateSaves`), then the row goes. `due_at` as in PendingReaction."""

    __tablename__ = "saved_later"
    __table_args__ = (Index("ix_saved_later_due", "platform", "due_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    platform: Mapped[str] = mapped_column(String(16))
    workspace: Mapped[str] = mapped_column(Ident)
    user: Mapped[str] = mapped_column(Ident)
    paper_id: Mapped[int] = mapped_column(ForeignKey("papers.id", ondelete="CASCADE"))
    saved_at: Mapped[datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PendingReaction(Base):
    """A reaction taken in and not yet acted on (bot.inbox): worked through, retried while it
    fails, deleted once done or given up. `due_at` is when it may be tried next; a worker
    that takes it moves `due_at` on, so no other takes it meanwhile."""

    __tablename__ = "pending_reactions"
    __table_args__ = (Index("ix_pending_reactions_due", "platform", "due_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    platform: Mapped[str] = mapped_column(String(16))
    workspace: Mapped[str] = mapped_column(Ident)
    channel: Mapped[str] = mapped_column(Ident)
    message_id: Mapped[str] = mapped_column(Ident)
    user: Mapped[str] = mapped_column(Ident)
    emoji: Mapped[str] = mapped_column(String(64))
    added: Mapped[bool] = mapped_column(Boolean)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ProcessedEvent(Base):
    """A platform event already handled, so a redelivery (Slack retries) is processed once."""

    __tablename__ = "processed_events"

    platform: Mapped[str] = mapped_column(String(16), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class Delivery(Base):
    """One scheduled send (a channel's daily or weekly post, a user's digest) for one period:
    claimed by exactly one worker under a lease, then marked sent, failed, or retried. A
    `manual` row is a send a person asked for, recorded once it ended; its period is the
    moment it was sent (UTC, to the microsecond), and nothing claims or retries it."""

    __tablename__ = "deliveries"
    __table_args__ = (UniqueConstraint("kind", "platform", "workspace", "target", "period"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # "channel" | "digest" | "weekly"
    platform: Mapped[str] = mapped_column(String(16))
    workspace: Mapped[str] = mapped_column(Ident)
    target: Mapped[str] = mapped_column(Ident)  # channel or user
    period: Mapped[str] = mapped_column(String(32))  # the slot's local date, YYYY-MM-DD
    manual: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16))  # see storage.deliveries.Status
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str | None] = mapped_column(String(64))  # the current or last claimant
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    message_ref: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(String(200))  # a failure reason, or what was sent
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class LeftWorkspace(Base):
    """A workspace (Slack) or server (Discord) that removed the app: nothing is sent there
    while this row exists, and its data is deleted once `left_at` is older than the grace
    period; installing the app again deletes the row and everything resumes as it was."""

    __tablename__ = "left_workspaces"

    platform: Mapped[str] = mapped_column(String(16), primary_key=True)
    workspace: Mapped[str] = mapped_column(Ident, primary_key=True)
    left_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


LEASE_NAME_LENGTH = 64


class Lease(Base):
    """A named role only one process may hold at a time (e.g. the Discord gateway connection),
    renewed by its holder before `expires_at` and taken over by another process after it."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(LEASE_NAME_LENGTH), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class WorkerBeat(Base):
    """A delivering worker's heartbeat: live until `expires_at`, renewed well before it. The
    live workers of a platform share its workspaces' sender leases (`bot.delivery.workers`)."""

    __tablename__ = "workers"

    worker: Mapped[str] = mapped_column(String(64), primary_key=True)
    platform: Mapped[str] = mapped_column(String(16))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
