"""The customers of the world: observable profile plus hidden (latent) state.

A :class:`Population` holds one numpy array per attribute, aligned by position; the
simulation mutates the *state* arrays (engagement swing, fatigue, consent, event days)
in place as days pass and contacts land. It round-trips through the
``ground_truth.customers`` table so a world can be rebuilt from a warehouse.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

from nextbest.world.params import REGIONS, SEGMENTS, URBANITY, WorldParams

NEVER = -1_000_000  # day offset meaning "has not happened"
GENDERS: tuple[str, ...] = ("f", "m", "x")

_REGION_SHARE = np.array([0.18, 0.12, 0.12, 0.14, 0.12, 0.14, 0.10, 0.08])
_REGION_URBANITY = np.array(
    [[0.8, 0.15, 0.05], [0.3, 0.4, 0.3], [0.25, 0.4, 0.35], [0.35, 0.4, 0.25],
     [0.3, 0.4, 0.3], [0.4, 0.4, 0.2], [0.35, 0.35, 0.3], [0.05, 0.25, 0.7]]
)
_DISTANCE_MEDIAN_KM = np.array([3.0, 9.0, 24.0])  # by urbanity


@dataclass
class Population:
    """Customers' attributes and latent state, one array entry per customer.

    Day fields are offsets in days from the world's start; ``NEVER`` means not yet.
    ``consent`` maps a consent column to int8 (-1 unknown, 0 no, 1 yes); ``valid`` maps
    a validity column to bool. ``affinity`` and ``noise`` are ``(n, n_categories)``.
    """

    customer_id: np.ndarray
    age: np.ndarray  # true age at the start (years), known to the world even when birth_date is null
    birth_day: np.ndarray  # date of birth as a day offset from the start
    birth_doy: np.ndarray  # day of year of the birthday (1..366)
    birth_known: np.ndarray
    gender: np.ndarray  # index into GENDERS
    region: np.ndarray
    urbanity: np.ndarray
    distance_km: np.ndarray
    join_day: np.ndarray
    app_user: np.ndarray
    segment: np.ndarray  # index into SEGMENTS
    eng_mu: np.ndarray  # long-run log interactions per day
    eng_x: np.ndarray  # current swing around eng_mu (state)
    value_mult: np.ndarray  # multiplies order and conversion values
    buy_rate: np.ndarray  # multiplies the organic order rate
    grumpiness: np.ndarray
    gain_mult: np.ndarray  # unobservable spread of persuasion
    fatigue: np.ndarray  # decayed count of recent contacts (state)
    moved_day: np.ndarray
    contract_end_day: np.ndarray
    newsletter_day: np.ndarray
    affinity: np.ndarray
    noise: np.ndarray
    consent: dict[str, np.ndarray]
    valid: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.customer_id)

    def positions(self, customer_ids: np.ndarray) -> np.ndarray:
        """Positions of ``customer_ids`` in the arrays (``KeyError`` for unknown ids)."""
        customer_ids = np.asarray(customer_ids, dtype=np.int64)
        pos = np.searchsorted(self.customer_id, customer_ids)
        pos_c = np.minimum(pos, len(self) - 1)
        bad = self.customer_id[pos_c] != customer_ids
        if bad.any():
            raise KeyError(f"unknown customer id(s) {customer_ids[bad][:5].tolist()}")
        return pos_c

    def age_at(self, day: int) -> np.ndarray:
        return self.age + day / 365.25

    # ------------------------------------------------------------------ persistence
    def to_frame(self, categories: tuple[str, ...]) -> pd.DataFrame:
        """Flat frame for ``ground_truth.customers`` (segment as text, one column per category)."""
        cols: dict[str, np.ndarray] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name in ("affinity", "noise"):
                for c, cat in enumerate(categories):
                    cols[f"{f.name}_{cat}"] = v[:, c]
            elif f.name in ("consent", "valid"):
                for col, arr in v.items():
                    cols[f"state_{col}"] = arr
            elif f.name == "segment":
                cols["segment"] = np.asarray(SEGMENTS)[v]
            else:
                cols[f.name] = v
        return pd.DataFrame(cols)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, categories: tuple[str, ...]) -> Population:
        """Inverse of :meth:`to_frame`."""
        frame = frame.sort_values("customer_id")
        kw: dict[str, object] = {}
        for f in fields(cls):
            if f.name in ("affinity", "noise"):
                kw[f.name] = frame[[f"{f.name}_{c}" for c in categories]].to_numpy(np.float32)
            elif f.name == "consent":
                kw[f.name] = {c[6:]: frame[c].to_numpy(np.int8) for c in frame.columns if c.startswith("state_consent_")}
            elif f.name == "valid":
                kw[f.name] = {c[6:]: frame[c].to_numpy(bool) for c in frame.columns if c.startswith("state_valid_")}
            elif f.name == "segment":
                kw[f.name] = pd.Categorical(frame["segment"], categories=SEGMENTS).codes.astype(np.int8)
            else:
                kw[f.name] = frame[f.name].to_numpy()
        return cls(**kw)  # type: ignore[arg-type]


def category_weights(age: np.ndarray, gender: np.ndarray, urbanity: np.ndarray, categories: tuple[str, ...]) -> np.ndarray:
    """Demographic prior of category affinity, ``(n, n_categories)``.

    Unknown categories get weight 1; the catalogue's usual ones follow plain retail
    patterns (kids in family age, garden outside cities, health for the old, ...).
    """
    f, m = gender == 0, gender == 1
    rules = {
        "fashion_women": np.where(f, 3.0, np.where(m, 0.3, 1.0)),
        "fashion_men": np.where(m, 3.0, np.where(f, 0.3, 1.0)),
        "beauty": np.where(f, 2.5, 0.6),
        "kids": np.where((age >= 28) & (age <= 50), 3.0, 0.4),
        "garden": np.array([0.4, 1.5, 2.5])[urbanity] * np.where(age >= 35, 1.5, 0.7),
        "health": np.where(age >= 55, 2.5, 0.6),
        "electronics": np.where(m, 1.5, 1.0) * np.where(age < 40, 1.5, 0.9),
        "sports": np.where(age < 40, 1.8, 0.7),
        "books": np.where(age >= 50, 1.5, 0.9),
        "home": np.where(age >= 30, 1.3, 0.8),
        "food": np.full(age.shape, 1.2),
        "pets": np.full(age.shape, 0.7),
        "stationery": np.full(age.shape, 0.5),
    }
    return np.stack([rules.get(c, np.ones(age.shape)) for c in categories], axis=1)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def create_population(
    n: int, rng: np.random.Generator, params: WorldParams, categories: tuple[str, ...], start: dt.date
) -> Population:
    """Draw ``n`` customers (ids 1..n): demographics, latent traits, initial state.

    Consent and validity are drawn later with the personal data
    (:func:`nextbest.world.personal.generate_personal`), which owns their consistency.
    """
    ids = np.arange(1, n + 1, dtype=np.int64)
    age = np.clip(rng.normal(44.0, 15.0, n), 18.0, 90.0)
    gender = rng.choice(3, size=n, p=[0.49, 0.47, 0.04]).astype(np.int8)
    region = rng.choice(len(REGIONS), size=n, p=_REGION_SHARE).astype(np.int8)
    u = rng.random(n)
    urbanity = (u[:, None] > np.cumsum(_REGION_URBANITY[region], axis=1)).sum(axis=1).clip(0, 2).astype(np.int8)
    distance = np.round(_DISTANCE_MEDIAN_KM[urbanity] * np.exp(rng.normal(0, 0.6, n)), 1).clip(0.2, 150)

    joins_now = rng.random(n) < params.join_during_share
    join_day = np.where(joins_now, rng.integers(0, 365, n), -np.ceil(rng.exponential(params.mean_tenure_days, n)) - 1)

    app_user = rng.random(n) < 1 / (1 + np.exp(-(params.app_user_base_logit - 0.06 * (age - 35))))
    eng_mu = (
        np.log(params.interactions_per_day)
        + rng.normal(0, params.engagement_sd, n)
        + 0.3 * app_user
        - 0.004 * (age - 45)
    )
    stationary_sd = params.engagement_shock_sd / np.sqrt(1 - params.engagement_ar**2)
    eng_x = rng.normal(0, stationary_sd, n)
    value_mult = np.exp(rng.normal(0, 0.45, n) + 0.15 * ((age > 35) & (age < 60)))
    buy_rate = np.exp(rng.normal(0, 0.3, n))
    grumpiness = rng.normal(0, 1, n)

    z_eng = (eng_mu - np.log(params.interactions_per_day)) / params.engagement_sd
    z_val = np.log(value_mult) / 0.45
    seg_logits = np.stack(
        [
            0.5 + 0.4 * app_user - 0.3 * z_eng**2,  # persuadable: moderately engaged, reachable in app
            -0.5 + 1.0 * z_eng + 0.7 * z_val,  # sure thing: engaged and valuable
            0.0 - 1.1 * z_eng,  # lost cause: disengaged
            -0.45 + 1.0 * grumpiness + 0.5 * (age >= 60) - 0.4 * z_eng,  # sleeping dog: grumpy, older
        ],
        axis=1,
    )
    seg_p = softmax(seg_logits / params.segment_temperature)
    segment = (rng.random(n)[:, None] > np.cumsum(seg_p, axis=1)).sum(axis=1).clip(0, len(SEGMENTS) - 1).astype(np.int8)
    # Sure things buy more of everything on their own: their type shows in the order history.
    buy_rate = buy_rate * np.array([1.0, 1.6, 0.6, 1.0])[segment]

    prior = category_weights(age, gender, urbanity, categories)
    affinity = rng.gamma(prior * 6.0)  # concentrated: demographics explain most of it
    affinity = (affinity + 1e-3) / (affinity + 1e-3).sum(axis=1, keepdims=True)

    birth_day = -np.round(age * 365.25).astype(np.int32)
    born = np.datetime64(start, "D") + birth_day
    birth_doy = (born - born.astype("datetime64[Y]").astype("datetime64[D]")).astype(np.int16) + 1
    return Population(
        customer_id=ids,
        age=age,
        birth_day=birth_day,
        birth_doy=birth_doy,
        birth_known=rng.random(n) >= params.birth_date_missing_share,
        gender=gender,
        region=region,
        urbanity=urbanity,
        distance_km=distance,
        join_day=join_day.astype(np.int32),
        app_user=app_user,
        segment=segment,
        eng_mu=eng_mu,
        eng_x=eng_x,
        value_mult=value_mult,
        buy_rate=buy_rate,
        grumpiness=grumpiness,
        gain_mult=np.exp(rng.normal(0, 0.1, n)),
        fatigue=np.zeros(n),
        moved_day=np.full(n, NEVER, dtype=np.int32),
        # Contracts (phone, energy) end some time in the next two years.
        contract_end_day=rng.integers(0, 730, n).astype(np.int32),
        newsletter_day=np.full(n, NEVER, dtype=np.int32),
        affinity=affinity.astype(np.float32),
        noise=rng.normal(0, params.noise_sd, (n, len(categories))).astype(np.float32),
        consent={},
        valid={},
    )


def urbanity_names(codes: np.ndarray) -> np.ndarray:
    return np.asarray(URBANITY)[codes]
