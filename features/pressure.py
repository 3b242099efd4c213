"""Contact pressure, the one definition: recent contacts overall and per channel, days since the latest.

The feature snapshot computes it at its as-of time (:mod:`nextbest.features.contacts`), the training set at
each decision's own time from the decision log before it (:func:`nextbest.training.dataset.pressure_sql`),
and the decision engine at each decision's time from its live contact history
(:meth:`nextbest.decisioning.history.ContactHistory.pressure`): the same SQL for the first two, and
:func:`pressure_values` (its array twin, tested equal on generated logs) for the third.

Kept free of the feature registry's imports: the registry, the configuration's validation and the
contact history all read it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from nextbest.config import NextbestConfig

#: Contact windows (days) of the any-channel counts ``contacts_<d>d``.
CONTACT_WINDOWS: tuple[int, ...] = (7, 30)

#: Days contact pressure looks back: the longest contact window. ``days_since_contact`` is capped at it,
#: which is also its value for a customer never contacted (or not within it).
PRESSURE_HORIZON_DAYS: int = max(CONTACT_WINDOWS)
#: Window of the per-channel contact counts ``contacts_<d>d_<channel>``.
CHANNEL_WINDOW_DAYS: int = 7
DAYS_SINCE_CONTACT = "days_since_contact"


@dataclass(frozen=True)
class PressureFeature:
    """One contact-pressure input: a count of recent contacts, or the days since the latest one.

    Attributes
    ----------
    name
        Feature name.
    window
        Counts: contacts at most this many days old; ``None`` for :data:`DAYS_SINCE_CONTACT`.
    channel
        Counts on this channel only (``None``: any channel).
    direction
        How the contact effect may move as the input grows (LightGBM monotone direction): -1, more
        recent contacts never raise it; +1, a longer rest since the latest contact never lowers it.
    default
        The value without any contact in the horizon (0 contacts; :data:`PRESSURE_HORIZON_DAYS` days).
    """

    name: str
    window: int | None
    channel: str | None
    direction: int
    default: float


def pressure_features(config: NextbestConfig) -> tuple[PressureFeature, ...]:
    """Every contact-pressure feature of ``config``, the one definition the feature snapshot, the training set
    (counted at each decision's own time) and the decision engine (from its live contact history) share.

    A contact is a contacted decision with an offer, on any channel (the banner too), strictly before the
    time the feature is measured at; its age is in fractional days.
    """
    counts = [PressureFeature(f"contacts_{d}d", d, None, -1, 0.0) for d in CONTACT_WINDOWS]
    counts += [
        PressureFeature(f"contacts_{CHANNEL_WINDOW_DAYS}d_{c.id}", CHANNEL_WINDOW_DAYS, c.id, -1, 0.0)
        for c in config.channels.channels
    ]
    return (*counts, PressureFeature(DAYS_SINCE_CONTACT, None, None, 1, float(PRESSURE_HORIZON_DAYS)))


def constrained_pressure(config: NextbestConfig) -> dict[str, int]:
    """The pressure features ``training.pressure_features`` constrains (``None``: all), with their directions."""
    chosen = config.training.pressure_features
    return {f.name: f.direction for f in pressure_features(config) if chosen is None or f.name in chosen}


def pressure_sql(
    features: Sequence[PressureFeature], age: str = "age_days", contacted: str = "contacted", channel: str = "channel"
) -> dict[str, str]:
    """``features`` as SQL aggregates over decision rows (with an offer) of one customer whose age in days is
    ``age`` (> 0 before the time measured at), contacted flag ``contacted`` and channel ``channel``.

    ``days_since_contact`` is NULL without a contact among the rows: coalesce it to its ``default``.
    """
    out = {}
    for f in features:
        if f.window is None:
            out[f.name] = f"least(floor(min({age}) FILTER (WHERE {contacted})), {PRESSURE_HORIZON_DAYS})"
        else:
            on = f" AND {channel} = '{f.channel}'" if f.channel is not None else ""  # channel ids are [a-z0-9_]
            out[f.name] = f"count(*) FILTER (WHERE {contacted} AND {age} <= {f.window}{on})"
    return out


def recent_contacts(age: str = "age_days", contacted: str = "contacted") -> dict[str, str]:
    """The any-channel counts ``contacts_<d>d`` of :func:`pressure_sql` (see there)."""
    counts = [PressureFeature(f"contacts_{d}d", d, None, -1, 0.0) for d in CONTACT_WINDOWS]
    return pressure_sql(counts, age, contacted)


def pressure_values(
    features: Sequence[PressureFeature], owner: np.ndarray, n: int, ts_us: np.ndarray, at_us: int, channel: np.ndarray
) -> dict[str, np.ndarray]:
    """:func:`pressure_sql` over arrays: the values of ``n`` customers at one time from their contacts.

    Parameters
    ----------
    features
        The pressure features to compute.
    owner
        (m,) position (0..n-1) of each contact's customer.
    n
        Customers.
    ts_us, at_us
        (m,) each contact's time and the time measured at, in microseconds since the epoch. Contacts at
        or after ``at_us`` are left out; the others' age counts whole milliseconds as DuckDB's
        ``date_diff('millisecond', ts, at)`` does (millisecond boundaries crossed).
    channel
        (m,) channel id of each contact (objects).
    """
    before = ts_us < at_us
    owner, channel = owner[before], channel[before]
    # The SQL's arithmetic: a BIGINT of milliseconds over a DOUBLE, so both round alike.
    age = (at_us // 1000 - ts_us[before] // 1000) / 86_400_000.0
    out: dict[str, np.ndarray] = {}
    for f in features:
        if f.window is None:
            latest = np.full(n, np.inf)
            np.minimum.at(latest, owner, age)
            out[f.name] = np.minimum(np.floor(latest), float(PRESSURE_HORIZON_DAYS))
            continue
        hit = age <= f.window
        if f.channel is not None:
            hit &= channel == f.channel
        out[f.name] = np.bincount(owner[hit], minlength=n).astype(float)
    return out
