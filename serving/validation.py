"""Checks of request values that depend on the server: its clock, settings and configuration.

Bounds that never change (64-bit ids and seeds, a finite revenue) are field
constraints of :mod:`nextbest.serving.schemas`, so the OpenAPI spec documents
them. What depends on the running server cannot be: a timestamp must lie in a
window around *now* (``NEXTBEST_MAX_PAST_DAYS`` / ``NEXTBEST_MAX_FUTURE_DAYS``)
and a context channel must be one the loaded configuration knows.
:class:`RequestChecks` does both, called by every route and by the direct
``/rank`` path alike, and raises :class:`InvalidFieldError`, which the service
answers with HTTP 422 in the format of its validation errors
(``error = "body.field: message"``).

A timestamp at the calendar's ends (``0001-01-01T00:00:00+01:00``) cannot be
converted to UTC without overflowing; the window is checked by comparing aware
datetimes, which never converts, so every later conversion is safe.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nextbest.errors import BadInputError

if TYPE_CHECKING:  # the schemas import this module's bounds
    from nextbest.serving.schemas import FeedbackBody, RankBatchBody, RankBody

#: The signed 64-bit range: the warehouse's BIGINT and the engine's int64 arrays.
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
#: Largest revenue one conversion may report (in the warehouse's currency); more is a unit mistake.
MAX_REVENUE = 1e9

PAST_ENV = "NEXTBEST_MAX_PAST_DAYS"
FUTURE_ENV = "NEXTBEST_MAX_FUTURE_DAYS"


class InvalidFieldError(BadInputError):
    """A request field's value the server rejects; answered with 422 naming ``field``."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _stamp(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class TimeWindow:
    """Timestamps accepted: from ``past_days`` before now to ``future_days`` after now."""

    past_days: float
    future_days: float

    def check(self, field: str, ts: dt.datetime | None, now: dt.datetime | None = None) -> None:
        """Raise :class:`InvalidFieldError` naming ``field`` when ``ts`` is outside the window.

        ``ts`` without a zone is UTC (the service's convention); ``now`` is an aware
        time (default the clock). No conversion of ``ts`` happens, so any datetime
        can be checked, however close to the calendar's ends.
        """
        if ts is None:
            return
        aware = ts if ts.utcoffset() is not None else ts.replace(tzinfo=dt.timezone.utc)
        now = now if now is not None else dt.datetime.now(dt.timezone.utc)
        earliest = now - dt.timedelta(days=self.past_days)
        latest = now + dt.timedelta(days=self.future_days)
        # Aware datetimes compare by their UTC instants without building a shifted datetime.
        if earliest <= aware <= latest:
            return
        raise InvalidFieldError(
            field,
            f"{ts.isoformat()} is outside the accepted window {_stamp(earliest)} .. {_stamp(latest)} "
            f"(at most {self.past_days:g} days before now, {PAST_ENV}, and {self.future_days:g} after, "
            f"{FUTURE_ENV}); send a time within it (or leave it out to mean now), "
            f"or have the server's operator widen the window",
        )


class RequestChecks:
    """The server-dependent checks of request bodies (see the module docstring).

    Parameters
    ----------
    window
        Accepted timestamps.
    channels
        The ids of the configured channels now (the configuration can change on a refresh).
    """

    def __init__(self, window: TimeWindow, channels: Callable[[], Sequence[str]]) -> None:
        self.window = window
        self._channels = channels

    def rank(self, body: RankBody | RankBatchBody) -> None:
        """Check a ``/rank`` or ``/rank_batch`` body's context."""
        context = body.context
        if context.timestamp is not None:
            self.window.check("body.context.timestamp", context.timestamp)
        if context.channel is not None:
            known = self._channels()
            if context.channel not in known:
                raise InvalidFieldError(
                    "body.context.channel",
                    f"{context.channel!r} is not a configured channel; use one of {list(known)} or leave it out",
                )

    def feedback(self, body: FeedbackBody) -> None:
        """Check a ``/feedback`` body's timestamp."""
        self.window.check("body.timestamp", body.timestamp)

