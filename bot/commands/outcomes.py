"""How the last scheduled delivery of a channel post or a digest reads in a status answer."""

from __future__ import annotations

from storage.models import Delivery


def last_delivery_line(delivery: Delivery | None, what: str) -> str | None:
    """One line on `delivery` (the latest period's), e.g. "Last post (2026-11-23): sent, 3
    papers."; None when nothing was scheduled yet."""
    if delivery is None:
        return None
    detail = delivery.detail or ""
    outcome = {
        "sent": "a notice that the day's list was missing"
        if detail == "list missing"
        else f"sent, {detail}",
        "empty": "nothing new to send",
        "claimed": "being sent now",
        "waiting": "waiting for the day's Daily Papers list",
        "retry": f"failed for now ({detail}), will retry"
        + (f" at {delivery.retry_at:%H:%M} UTC" if delivery.retry_at else ""),
        "failed": f"failed ({detail})",
        "skipped": f"skipped ({detail})",
    }.get(delivery.status, delivery.status)
    return f"{what} ({delivery.period}): {outcome}."
