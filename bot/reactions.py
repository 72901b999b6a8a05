"""React to save: a save emoji on a paper message the bot posted saves (or unsaves) the paper,
and on any message the adapter can read, the papers it links to."""

from __future__ import annotations

from datetime import datetime

from bot.cards import DEMO_NOTE, title_text
from bot.events import ReactionChanged, UserRef
from bot.messages import Message
from bot.ports import MessageReader
from bot.saving import outcome_message, save_linked_papers, unsave_linked_papers, unsave_message
from bot.sources.lookup import PaperLookup
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
    """A save emoji on one of the bot's paper posts saves that paper; on any other message the
    platform lets the bot read, it saves the papers the message links to (`bot.links`).
    Removing the emoji unsaves them, for the reacting user only."""

    def __init__(
        self,
        store: Store,
        save_emojis: tuple[str, ...],
        read_text: MessageReader,
        lookup: PaperLookup | None = None,
    ) -> None:
        self.store = store
        self.save_emojis = {emoji_name(emoji) for emoji in save_emojis}
        self.read_text = read_text  # a member's message, where the platform lets us read it
        self.lookup = lookup  # papers a message links to that are not stored yet

    def is_save(self, emoji: str) -> bool:
        return emoji_name(emoji) in self.save_emojis

    async def handle(self, event: ReactionChanged, now: datetime) -> Message | None:
        """Save or unsave; None when the reaction is not for us (other emoji, or a message
        that is neither a paper post nor readable with a paper link). Raises what the
        database or the platform raises: `bot.inbox` tries again."""
        if not self.is_save(event.emoji):
            return None
        answer = await self._paper_post(event, now)
        if answer is None:
            answer = await self._linked_papers(event, now)
        return answer

    async def _paper_post(self, event: ReactionChanged, now: datetime) -> Message | None:
        """The paper of one of the bot's paper posts, saved or unsaved; None for any other
        message."""
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
        return Message(
            text=f"{verb}: {title_text(paper)}",
            lines=("See them with `/papers saved`.",),
            note=DEMO_NOTE if paper.is_demo else None,
        )

    async def _linked_papers(self, event: ReactionChanged, now: datetime) -> Message | None:
        """The papers a message links to, saved or unsaved; None (nothing to say) when it
        cannot be read or links to no paper."""
        text = await self.read_text(event.message)
        if text is None:
            return None
        user = UserRef(event.message.channel.scope, event.user)
        if event.added:
            saved = await save_linked_papers(self.store, self.lookup, user, text, now)
            return outcome_message(saved) if saved.named else None
        unsaved = await unsave_linked_papers(self.store, user, text)
        return unsave_message(unsaved) if unsaved.asked else None
