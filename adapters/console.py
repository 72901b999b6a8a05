"""The console adapter: the whole bot in a terminal (or a pipe), with no platform at all.

You are user `you` (an admin) in channel `general` of workspace `local`. Every bot message
gets a number, e.g. `[3]`, so that `/react 3 bookmark` can name it. A terminal has no markup
to escape: text from papers and users only loses its unsafe characters (`bot.text`).
"""

from __future__ import annotations

import asyncio
import re
import secrets
import sys
import textwrap
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TextIO

from bot.app import Paperboy
from bot.cards import saved_by_text
from bot.events import ChannelRef, CommandInvoked, MessageRef, ReactionChanged, Scope, UserRef
from bot.messages import CHANNEL_SLOT, Attachment, Message, PaperCard, Visibility
from bot.ports import FileToSend
from bot.text import strip_unsafe

SCOPE = Scope("console", "local")
CHANNEL = ChannelRef(SCOPE, "general")
ADMIN = "you"
MAX_AUTHORS = 3

BANNER = (
    "paperboy console: you are `you` (admin) in #general. Type `/papers help` for commands.",
    "React with `/react N bookmark` (or `/unreact N bookmark`) on message [N]; `/as NAME` "
    "switches user.",
    "`/post-daily` runs this channel's daily post, `/post-weekly` its weekly team post, "
    "`/digest` sends your DM digest, `/quit` ends.",
    "Any other line is a message you say in #general: paste a paper link, then react to it "
    "to save the paper.",
)
LINE_HELP = (
    "Commands are /papers, /react N EMOJI, /unreact N EMOJI, /post-daily, /post-weekly, "
    "/digest, /as NAME or /quit; a line without / is a message in #general."
)
_USER_NAME = re.compile(r"^[\w.-]{1,32}$")


def render_card(index: int, card: PaperCard) -> list[str]:
    lines = [f"  {index}. {strip_unsafe(card.title)}"]
    facts = [saved_by_text(card.saved_by)] if card.saved_by is not None else []
    if card.authors:
        names = ", ".join(strip_unsafe(name) for name in card.authors[:MAX_AUTHORS])
        more = len(card.authors) - MAX_AUTHORS
        facts.append(names + (f" +{more} more" if more > 0 else ""))
    if card.upvotes is not None:
        facts.append(f"▲ {card.upvotes}")
    if card.published:
        facts.append(card.published.isoformat())
    if card.is_demo:
        facts.append(f"demo paper {card.paper_id}")  # the id `/papers unsave` takes
    if facts:
        lines.append("     " + " · ".join(facts))
    if card.summary:
        lines += textwrap.wrap(
            strip_unsafe(card.summary), width=96, initial_indent="     ", subsequent_indent="     "
        )
    links = [f"Hugging Face {card.url}"] + [f"{link.label} {link.url}" for link in card.links]
    lines.append("     " + " · ".join(strip_unsafe(link) for link in links))
    return lines


def render(message: Message) -> list[str]:
    text = message.text
    if message.channel is not None:
        text = text.replace(CHANNEL_SLOT, f"#{message.channel}")
    lines = [strip_unsafe(text)] if text else []
    lines += [f"  {strip_unsafe(line)}" for line in message.lines]
    for index, card in enumerate(message.cards, start=1):
        lines += render_card(index, card)
    if not message.text:  # a lone paper: its title leads
        lines[0] = lines[0].lstrip().removeprefix("1. ")
    if message.note:
        lines.append(f"  ({strip_unsafe(message.note)})")
    if message.attachment:
        lines.append(f"  --- {strip_unsafe(message.attachment.filename)} ---")
        lines += [strip_unsafe(line) for line in message.attachment.content.splitlines()]
        lines.append("  ---")
    return lines


@dataclass
class ConsoleOutbound:
    """Prints messages, numbering each; remembers numbers so reactions can name messages."""

    out: TextIO
    run_id: str = field(default_factory=lambda: secrets.token_hex(4))
    refs: dict[int, MessageRef] = field(default_factory=dict)
    said: dict[int, str] = field(default_factory=dict)  # members' messages' texts, by number
    count: int = 0
    notes_shown: set[str] = field(default_factory=set)

    def show(self, message: Message, where: str, channel: ChannelRef) -> MessageRef:
        if message.note in self.notes_shown:  # a note (the demo disclaimer): once a run
            message = replace(message, note=None)
        elif message.note:
            self.notes_shown.add(message.note)
        first, *rest = render(message)
        return self._numbered(channel, [f"{where}{first}", *rest])

    def member_message(self, user: str, text: str, unfurled: list[PaperCard]) -> None:
        """`user`'s message in #general, and the cards of the papers it links to under it
        (as Slack unfurls them)."""
        lines = [f"#{CHANNEL.channel} {strip_unsafe(user)}: {strip_unsafe(text)}"]
        for index, card in enumerate(unfurled, start=1):
            lines += render_card(index, card)
        self._numbered(CHANNEL, lines)
        self.said[self.count] = text

    def _numbered(self, channel: ChannelRef, lines: list[str]) -> MessageRef:
        self.count += 1
        # Numbers restart each run; the run id keeps stored message references unique.
        ref = MessageRef(channel, f"{self.run_id}-{self.count}")
        self.refs[self.count] = ref
        first, *rest = lines
        print(f"[{self.count}] {first}", file=self.out)
        for line in rest:
            print(line, file=self.out)
        self.out.flush()
        return ref

    async def post(self, channel: ChannelRef, message: Message) -> MessageRef:
        return self.show(message, f"#{strip_unsafe(channel.channel)}: ", channel)

    async def send_dm(self, user: UserRef, message: Message) -> MessageRef:
        return self.show(
            message, f"DM to {strip_unsafe(user.user)}: ", ChannelRef(user.scope, f"dm-{user.user}")
        )

    async def send_file(self, user: UserRef, file: FileToSend) -> MessageRef:
        """Printed as a DM holding the file (its text)."""
        attachment = Attachment(file.name, file.content.decode("utf-8", "replace"))
        return await self.send_dm(user, Message(text=file.caption, attachment=attachment))

    async def tell(self, user: UserRef, about: MessageRef, message: Message) -> None:
        self.reply(message)

    async def read_text(self, message: MessageRef) -> str | None:
        """A member's message typed in this run (the bot's own are not read)."""
        number = next((n for n, ref in self.refs.items() if ref == message), None)
        return None if number is None else self.said.get(number)

    def spread(self, message: Message) -> list[Message]:
        return [message]  # a terminal shows any length

    async def sent_keys(
        self, target: ChannelRef | UserRef, since: datetime
    ) -> dict[str, MessageRef]:
        return {}  # the console runs no scheduled deliveries to resume

    def reply(self, message: Message) -> None:
        where = "(only you) " if message.visibility is Visibility.CALLER else ""
        self.show(message, where, CHANNEL)

    def say(self, text: str) -> None:
        print(text, file=self.out)
        self.out.flush()


class ConsoleSession:
    """Reads lines and turns them into neutral events, as a chat platform would."""

    def __init__(self, bot: Paperboy, outbound: ConsoleOutbound) -> None:
        self.bot = bot
        self.outbound = outbound
        self.user = ADMIN

    async def handle_line(self, line: str) -> bool:
        """Handle one input line; False when the session should end."""
        line = line.strip()
        if not line:
            return True
        word, _, rest = line.partition(" ")
        if word == "/quit":
            return False
        if word == "/papers":
            event = CommandInvoked(CHANNEL, self.user, rest, is_admin=self.user == ADMIN)
            self.outbound.reply(await self.bot.handle_command(event))
        elif word in ("/react", "/unreact"):
            await self._react(rest, added=word == "/react")
        elif word == "/post-daily" and not rest:
            await self._post_daily()
        elif word == "/post-weekly" and not rest:
            if not (await self.bot.weekly.post(CHANNEL)).papers:
                self.outbound.say("Nothing to post in #general: nothing saved or trending.")
        elif word == "/digest" and not rest:
            if not (await self.bot.digests.send(UserRef(SCOPE, self.user))).papers:
                self.outbound.say(
                    "Nothing new for your digest (follow topics with /papers follow)."
                )
        elif word == "/as" and _USER_NAME.match(rest):
            self.user = rest
            role = "an admin" if rest == ADMIN else "not an admin"
            self.outbound.say(f"You are now `{rest}` ({role}).")
        elif not line.startswith("/"):
            unfurled = await self.bot.unfurl(line.split())
            self.outbound.member_message(self.user, line, list(unfurled.values()))
        else:
            self.outbound.say(LINE_HELP)
        return True

    async def _post_daily(self) -> None:
        """What the channel's daily post does at its time: nothing when it is off. Running it
        early is an admin's call, as `/papers channel post-now` is."""
        if self.user != ADMIN:
            self.outbound.say("Only admins can run #general's daily post (you are not one).")
            return
        delivered = await self.bot.daily.post_if_on(CHANNEL)
        if delivered is None:
            self.outbound.say(
                "The daily post is off in #general: turn it on with `/papers channel on`."
            )
        elif not delivered.papers:
            self.outbound.say("Nothing new to post in #general.")

    async def _react(self, args: str, *, added: bool) -> None:
        parts = args.split()
        if len(parts) != 2 or not parts[0].isdigit():
            self.outbound.say("Usage: /react N EMOJI, e.g. /react 3 bookmark")
            return
        ref = self.outbound.refs.get(int(parts[0]))
        if ref is None:
            self.outbound.say(f"There is no message [{int(parts[0])}].")
            return
        # The same way in as a chat platform's reactions: recorded, acted on, answered.
        event = ReactionChanged(ref, self.user, parts[1].strip(":"), added)
        if await self.bot.inbox.take_in(event):
            await self.bot.inbox.work_through(SCOPE.platform)


async def run_console(bot: Paperboy, outbound: ConsoleOutbound, stdin: TextIO = sys.stdin) -> None:
    """Read lines until end of input or `/quit`; works with a terminal or a pipe."""
    session = ConsoleSession(bot, outbound)
    for line in BANNER:
        outbound.say(line)
    while True:
        line = await asyncio.to_thread(stdin.readline)
        if not line or not await session.handle_line(line):
            return
