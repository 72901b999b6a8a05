"""Many concurrent callers to one transaction: calls that arrive while a batch is being
handled share the next one, and each caller still gets its own result or error.

On a busy morning hundreds of deliveries are in flight, and a transaction per call costs
more CPU than the work in it. A batch that fails is handled again one call at a time, so a
bad item fails only its own caller; unless the database could not be reached, which fails
every caller at once (one at a time, a thousand callers would knock a thousand times).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from storage.db import unreachable

T = TypeVar("T")
R = TypeVar("R")

MAX_BATCH = 500


class Batcher(Generic[T, R]):
    def __init__(
        self, handle: Callable[[Sequence[T]], Awaitable[Sequence[R]]], max_batch: int = MAX_BATCH
    ) -> None:
        self.handle = handle  # one result per item, in order
        self.max_batch = max_batch
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._worker: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        """`item`'s result, once its batch is handled; raises what handling it raised."""
        done: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, done))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._work())
        return await done

    async def _work(self) -> None:
        while self._waiting:
            batch = self._waiting[: self.max_batch]
            self._waiting = self._waiting[self.max_batch :]
            try:
                results = await self.handle([item for item, _ in batch])
            except Exception as error:
                if unreachable(error):
                    for _, done in batch:
                        _fail(done, error)
                    continue
                for item, done in batch:
                    try:
                        (result,) = await self.handle([item])
                    except Exception as error:
                        _fail(done, error)
                    else:
                        _resolve(done, result)
            else:
                for (_, done), result in zip(batch, results, strict=True):
                    _resolve(done, result)


# A caller cancelled meanwhile (the worker is stopping) has a done future: nothing to settle.


def _resolve(done: asyncio.Future[R], result: R) -> None:
    if not done.done():
        done.set_result(result)


def _fail(done: asyncio.Future[R], error: BaseException) -> None:
    if not done.done():
        done.set_exception(error)
