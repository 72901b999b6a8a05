"""Scheduled delivery: everything between "a slot is due" and "its messages are recorded as
sent", exactly once across any number of workers.

- `slots`: which deliveries recur and when (local time, IANA timezone) and their ledger keys.
- `scheduler`: the worker's APScheduler jobs: fire, catch up at start, retry what is due.
- `runner`: one delivery: sender lease, ledger claim, its kind's send step, the outcome.
- `resumable`: the one way a delivery's messages go out, skipping what a retry finds sent.
- `leases`, `batching`: one sender per workspace; many callers to one transaction.
- `status`: what was and will be delivered, for `paperboy status` and status answers.

What a delivery sends belongs to its flow (`bot.daily`, `bot.digest`), which implements
`runner.DeliveryKind`.
"""
