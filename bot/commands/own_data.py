"""A member's own data in this workspace: `export mine` (a JSON file of everything stored
about them) and `forget me [confirm]` (delete it). Other members' data and the channels'
settings are never part of it."""

from __future__ import annotations

import json
from typing import Any

from bot.commands.context import CommandContext
from bot.commands.parser import ExportMine, ForgetMe
from bot.events import UserRef
from bot.messages import Attachment, Message, counted
from bot.ports import DeliveryError, FileToSend
from storage.store import Repositories

EXPORT_NAME = "paperboy-my-data.json"
EXPORT_TYPE = "application/json"
CONFIRM = "`/papers forget me confirm`"


async def own_data(repos: Repositories, user: UserRef) -> dict[str, Any]:
    """Everything stored about `user` in their workspace, as JSON-ready values."""
    where = (user.scope.platform, user.scope.workspace, user.user)
    saves = await repos.users.saves_with_dates(*where)
    digest = await repos.users.digest_setting(*where)
    pending = await repos.pending.of_user(*where)
    return {
        "platform": user.scope.platform,
        "workspace": user.scope.workspace,
        "user": user.user,
        "saved_papers": [
            {"arxiv_id": paper.arxiv_id, "title": paper.title, "saved_at": at.isoformat()}
            for paper, at in saves
        ],
        "follows": await repos.users.following(*where),
        "digest": None
        if digest is None
        else {
            "cadence": digest.cadence,
            "weekday": digest.weekday,
            "time": digest.send_time,
            "timezone": digest.timezone,
            "paused": digest.disabled_reason is not None,
        },
        "pending_saves": [
            {
                "arxiv_id": row.arxiv_id,
                "requested_at": row.requested_at.isoformat(),
                "given_up": row.given_up_at is not None,
            }
            for row in pending
        ],
    }


def _summary(data: dict[str, Any]) -> list[str]:
    """What `data` holds, in words, a line per kind."""
    return [
        counted(len(data["saved_papers"]), "saved paper"),
        counted(len(data["follows"]), "followed topic"),
        "your digest setting" if data["digest"] else "no digest setting",
        counted(len(data["pending_saves"]), "pending save"),
    ]


async def export_mine(ctx: CommandContext, command: ExportMine) -> Message:
    """The file rides in the answer where the platform lets an answer carry one to the
    caller alone; elsewhere it goes to the caller's DMs."""
    async with ctx.store.reading() as repos:
        data = await own_data(repos, ctx.actor)
    content = json.dumps(data, ensure_ascii=False, indent=2)
    caption = "Everything stored about you in this workspace: " + ", ".join(_summary(data)) + "."
    if ctx.event.files_in_answer:
        return Message(text=caption, attachment=Attachment(EXPORT_NAME, content, EXPORT_TYPE))
    try:
        await ctx.outbound.send_file(
            ctx.actor, FileToSend(EXPORT_NAME, content.encode("utf-8"), caption)
        )
    except DeliveryError:
        return Message(text="I couldn't send you the file just now. Please try again later.")
    return Message(
        text="I sent you a file of everything stored about you in this workspace, "
        "in a direct message."
    )


async def forget_me(ctx: CommandContext, command: ForgetMe) -> Message:
    if not command.confirmed:
        async with ctx.store.reading() as repos:
            data = await own_data(repos, ctx.actor)
        return Message(
            text="This deletes everything stored about you in this workspace:",
            lines=(
                *_summary(data),
                "and the record of which papers your digests sent you.",
                "Other members' data and the channels' posts stay. To delete yours, run "
                f"{CONFIRM}.",
            ),
        )
    async with ctx.store.transaction() as repos:
        deleted = await repos.users.forget(ctx.platform, ctx.workspace, ctx.user)
    gone = [
        counted(deleted["saves"], "saved paper"),
        counted(deleted["follows"], "followed topic"),
        counted(deleted["digest settings"], "digest setting"),
        counted(deleted["pending saves"], "pending save"),
    ]
    return Message(
        text="Deleted everything stored about you in this workspace: " + ", ".join(gone) + ".",
        lines=("Saving, following or a digest starts anew whenever you like.",),
    )
