"""What a Slack process checks before it serves: Slack answers and takes its tokens. Each
failure is one line naming the variable to check (ConfigError, Unavailable)."""

from __future__ import annotations

import aiohttp
from slack_sdk.errors import SlackApiError

from adapters.slack.outbound import PLATFORM, web_client
from bot.app import Paperboy
from bot.events import Scope, WorkspaceBack
from config import ConfigError, Settings, Unavailable

# Answers that say Slack refused the token itself, not that it could not answer.
REJECTED = frozenset(
    {
        "invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired",
        "not_allowed_token_type",  # say, a bot token where an app-level one belongs
    }
)  # fmt: skip
# What a call raises when Slack could not be reached: refused, unknown host, timed out.
UNREACHABLE = (aiohttp.ClientError, OSError, TimeoutError)


def start_failure(error: Exception, token: str) -> Exception:
    """A Slack call made at start with the token in variable `token` failed: why, in one line."""
    if isinstance(error, SlackApiError):
        code = str(error.response.get("error", "unknown_error"))
        if code in REJECTED:
            return ConfigError(f"{token}: Slack rejected this token ({code})")
        return Unavailable(f"Slack unavailable ({code}); check PAPERBOY_SLACK_API_URL")
    return Unavailable.because("Slack", error, "the network and PAPERBOY_SLACK_API_URL")


async def check_bot_token(settings: Settings, bot: Paperboy) -> str:
    """Who the bot is, and where, for the readiness line: with a single SLACK_BOT_TOKEN, as
    auth.test says (its workspace, if it had removed the app, is back: a reinstall comes
    with a new token, and a start with it resumes everything); with OAuth each install has
    its own token, and an install brings its workspace back."""
    if settings.slack_oauth or settings.slack_bot_token is None:
        return "for the workspaces that installed it"
    client = web_client(settings.slack_api_url, settings.slack_bot_token.get_secret_value())
    try:
        identity = await client.auth_test()
    except (SlackApiError, *UNREACHABLE) as error:
        raise start_failure(error, "SLACK_BOT_TOKEN") from error
    team = str(identity["team_id"])
    await bot.workspace_back(WorkspaceBack(Scope(PLATFORM, team)))
    return f"as {identity.get('user')} in {identity.get('team')} ({team})"
