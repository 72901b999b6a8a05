"""React to save: a save emoji on a paper message the bot posted saves (or unsaves) the paper."""

from __future__ import annotations

from datetime import datetime

from bot.cards import DEMO_NOTE
from bot.events import ReactionChanged
from bot.messages import Message
from storage.store import Store

# The core names an emoji by its common short name ("bookmark"), as PAPERBOY_SAVE_EMOJIS and
# Slack's reaction events do; Discord sends and shows the character itself, and maps through
# this table.
EMOJI_CHARACTERS = {
    "bookmark": "🔖",
    "star": "⭐",
    "pushpin": "📌",
    "heart": "❤️",
    "books": "📚",
    "floppy_disk": "💾",
}
_NAMES = {character: name for name, character in EMOJI_CHARACTERS.items()}


def emoji_name(emoji: str) -> str:
    """The name of `emoji`, given by name or as its character (itself when unknown)."""
    return _NAMES.get(emoji, emoji)


def emoji_character(name: str) -> str | None:
    """The character of the emoji named `name`, when known."""
    return EMOJI_CHARACTERS.get(name)


def emoji_in_text(name: str) -> str:
    """The emoji named `name` as text shows it: its character, which every platform shows,
    or else its name in words."""
    return emoji_character(name) or f"the {name} emoji"


class SaveReactions:
    def __init__(self, store: Store, save_emojis: tuple[str, ...]) -> None:
        self.store = store
        self.save_emojis = {emoji_name(emoji) for emoji in save_emojis}

    async def handle(self, event: ReactionChanged, now: datetime) -> Message | None:
        """Save or unsave; None when the reaction is not for us (other emoji, other message)."""
        if emoji_name(event.emoji) not in self.save_emojis:
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
