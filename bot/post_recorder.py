"""Recording the paper messages daily posts send, many posts to a transaction.

Each paper message is recorded (which message holds which paper) before its post sends the
next one, so a reaction on it names the paper and a retry never posts it again. A
transaction per message costs more CPU than the send itself; on a busy morning hundreds of
posts are in flight, so the rows that arrive while one transaction commits share the next.
Every caller still returns only once its own row is committed.
"""

from __future__ import annotations

import asyncio

from storage.channels import PostRecord
from storage.store import Store

MAX_BATCH = 500


class PostRecorder:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._waiting: list[tuple[PostRecord, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def record(self, post: PostRecord) -> None:
        """Return once `post` is committed; raise what committing it raised."""
        done = asyncio.get_running_loop().create_future()
        self._waiting.append((post, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write())
        await done

    async def _write(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
            try:
                await self._commit([post for post, _ in batch])
            except Exception:
                # One bad row must fail only its own post: write them one at a time.
                for post, done in batch:
                    try:
                        await self._commit([post])
                    except Exception as error:
                        _settle(done, error)
                    else:
                        _settle(done, None)
            else:
                for _, done in batch:
                    _settle(done, None)

    async def _commit(self, posts: list[PostRecord]) -> None:
        async with self.store.transaction() as repos:
            await repos.channels.record_posts(posts)


def _settle(done: asyncio.Future[None], error: Exception | None) -> None:
    if done.done():  # its post was cancelled (the worker is stopping)
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)
