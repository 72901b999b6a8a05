"""Recording the paper messages daily posts send, many posts to a transaction.

Each paper message is recorded (which message holds which paper) before its post sends the
next one, so a reaction on it names the paper and a retry never posts it again. A
transaction per message costs more CPU than the send itself; on a busy morning hundreds of
posts are in flight, so the rows that arrive while one transaction commits share the next.
Every caller still returns only once its own row is committed.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.batching import Batcher
from storage.channels import PostRecord
from storage.store import Store


class PostRecorder:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._batches: Batcher[PostRecord, None] = Batcher(self._commit)

    async def record(self, post: PostRecord) -> None:
        """Return once `post` is committed; raise what committing it raised."""
        await self._batches.submit(post)

    async def _commit(self, posts: Sequence[PostRecord]) -> list[None]:
        async with self.store.transaction() as repos:
            await repos.channels.record_posts(posts)
        return [None] * len(posts)
