"""What the core takes from the settings: defaults and sizes of its answers."""

from __future__ import annotations

from dataclasses import dataclass

from config import Settings


@dataclass(frozen=True)
class BotConfig:
    save_emojis: tuple[str, ...] = ("bookmark",)
    default_tz: str = "UTC"
    default_post_time: str = "09:00"
    default_post_count: int = 5
    search_budget: float = 1.5
    today_count: int = 5
    topic_count: int = 5
    admins: str = "workspace admins"  # who may change channel settings, in the platform's words

    @classmethod
    def from_settings(cls, settings: Settings) -> BotConfig:
        return cls(
            save_emojis=settings.save_emojis,
            default_tz=settings.default_tz,
            default_post_time=settings.default_post_time,
            default_post_count=settings.default_post_count,
            search_budget=settings.search_budget_seconds,
        )

    @property
    def save_emoji(self) -> str:
        """The emoji the bot offers for saving: the first that saves, by name."""
        return self.save_emojis[0]
