"""React to save: a save emoji on a paper message the bot posted saves (or unsaves) the paper."""

from __future__ import annotations

from datetime import datetime

from bot.cards import DEMO_NOTE
from bot.events import ReactionChanged
from bot.messages import Message
from storage.store import Store

# Platforms name an emoji differently (Slack `bookmark`, Discord the character itself).
EMOJI_CHARACTERS = {
    "bookmark": "🔖",
    "star": "⭐",
    "pushpin": "📌",
    "heart": "❤️",
    "books": "📚",
    "floppy_disk": "💾",
}


def emoji_aliases(name: str) -> set[str]:
    """Every spelling of an emoji: its name and its character, when known."""
    name = name.strip(":")
    aliases = {name}
    if name in EMOJI_CHARACTERS:
        aliases.add(EMOJI_CHARACTERS[name])
    for short, character in EMOJI_CHARACTERS.items():
        if name == character:
            aliases.add(short)
    return aliases


def display_emoji(name: str) -> str:
    return EMOJI_CHARACTERS.get(name, f":{name}:")


class SaveReactions:
    def __init__(self, store: Store, save_emojis: tuple[str, ...]) -> None:
        self.store = store
        self.save_emojis = set().union(*(emoji_aliases(name) for name in save_emojis))

    async def handle(self, event: ReactionChanged, now: datetime) -> Message | None:
        """Save or unsave; None when the reaction is not for us (other emoji, other message)."""
        if event.emoji.strip(":") not in self.save_emojis:
            return None
        ref = event.message
        scope = ref.channel.scope
        async with self.store.transaction() as repos:
            paper_id = await repos.channels.paper_for_message(
                scope.platform, scope.workspace, ref.channel.channel, ref.message_id
            )
            if paper_id is None:
                return None
            paper = (await repos.papers.by_ids([paper_id]))[paper_id]
            if event.added:
                changed = await repos.users.save(
                    scope.platform, scope.workspace, event.user, paper_id, now
                )
                verb = "Saved" if changed else "Already saved"
            else:
                changed = await repos.users.unsave(
                    scope.platform, scope.workspace, event.user, paper_id
                )
                verb = "Removed from your saved papers" if changed else "Not in your saved papers"
        # Backticks in a Message's text mark our own code spans; a title's must stay text.
        title = paper.title.replace("`", "\u2019")
        return Message(
            text=f"{verb}: {title}",
            lines=("See them with `/papers saved`.",),
            note=DEMO_NOTE if paper.is_demo else None,
        )
