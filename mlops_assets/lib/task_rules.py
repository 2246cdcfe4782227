"""Plausibility rules a task record must meet, shared by cleaning (quarantine) and serving (422).

One rule, two enforcers: a record the warehouse would quarantine is one the online service refuses,
with the same words. cleaning.py applies these in SQL with the same constants; features.py applies
them to each request.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

# Tasks created before this are date-format mix-ups (day and month swapped, a 2-digit year read as 19xx).
EARLIEST_CREATED_AT = datetime(1990, 1, 1, tzinfo=UTC)
# Clocks and time zones disagree by hours, never by days: later than now + this is in the future.
FUTURE_TOLERANCE = timedelta(days=1)

BEFORE_EARLIEST = f" is before {EARLIEST_CREATED_AT.year}: not a plausible task date (a date-format mix-up?)"
IN_THE_FUTURE = " is in the future: check the export's date format and time zone"


def created_at_problem(created_at: datetime, now: datetime) -> str | None:
    """Why a task's (aware) creation time is not plausible, as cleaning words it; None when it is."""
    if created_at < EARLIEST_CREATED_AT:
        return f"created_at {created_at:%Y-%m-%d}{BEFORE_EARLIEST}"
    if created_at > now + FUTURE_TOLERANCE:
        return f"created_at {created_at:%Y-%m-%d}{IN_THE_FUTURE}"
    return None
