"""The synthetic customer world: a reusable model object with a hidden ground truth.

>>> world = World.create(n_customers=1_000, seed=7)
>>> with connect("warehouse.duckdb") as con:
...     world.write_history(con, days=60)           # tables + ground truth
>>> truth = world.true_probabilities([1, 2, 3])   # every offer x channel, now
>>> activity = world.advance(world.day)           # one more organic day
>>> outcome = world.respond(decisions, world.day - 1)

See ``docs/synthetic-world.md`` for the generative story and every parameter.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence

import duckdb
import numpy as np
import pandas as pd

from nextbest.config import NextbestConfig, load_config
from nextbest.errors import BadInputError, NotFoundError
from nextbest.world import store
from nextbest.world.activity import (
    INTERACTION_COLUMNS,
    LIFE_EVENT_COLUMNS,
    TRANSACTION_COLUMNS,
    Activity,
    OrganicActivity,
)
from nextbest.world.campaigns import DECISION_COLUMNS, campaign_decisions
from nextbest.world.frequency import frequency_decisions, running
from nextbest.world.params import EXTRA_CATEGORIES, REGIONS, WorldParams
from nextbest.world.personal import generate_personal
from nextbest.world.population import GENDERS, Population, create_population, urbanity_names
from nextbest.world.respond import RESPONSE_COLUMNS, TRUTH_COLUMNS, Outcome, respond
from nextbest.world.truth import Catalogue, true_probabilities
from nextbest.world.vocabulary import Vocabulary

DEFAULT_START = dt.date(2024, 1, 1)
#: Flush buffered rows to DuckDB at least this often (days) during ``write_history``.
FLUSH_EVERY_DAYS = 7


def world_categories(config: NextbestConfig) -> tuple[str, ...]:
    """The offer catalogue's categories (in order of appearance) plus the world's extra ones."""
    cats = list(dict.fromkeys(o.category for o in config.offers.offers))
    return tuple(cats + [c for c in EXTRA_CATEGORIES if c not in cats])


def _day_of(start: dt.date, day: int | dt.date | dt.datetime | str | pd.Timestamp) -> int:
    if isinstance(day, (int, np.integer)):
        return int(day)
    return (pd.Timestamp(day).date() - start).days


class World:
    """A synthetic customer world: observable customers plus the hidden truth about them.

    Build it with :meth:`create` (fresh) or :meth:`load` (from a warehouse written by
    :meth:`write_history`). The world keeps a clock, :attr:`day` (days since
    :attr:`start`): :meth:`advance` draws one day's organic activity and moves the clock;
    :meth:`respond` applies a batch of decisions. All randomness is keyed by
    ``(seed, stream, day, customer)``, so runs are reproducible and two policies acting on
    copies of one world see the same customers draw the same uniforms.

    Parameters
    ----------
    population
        Customers' attributes and latent state.
    personal
        Personal columns aligned with the population (first_name, email, ...).
    defects
        Seeded data defects (kind, customer_id, detail).
    preferred_channel
        Stated preferred channel per customer (``None`` = no preference).
    params, config, seed, start, day
        World parameters, configuration (offers and channels), seed, start date, clock.
    """

    def __init__(
        self,
        population: Population,
        personal: pd.DataFrame,
        defects: pd.DataFrame,
        preferred_channel: np.ndarray,
        *,
        params: WorldParams,
        config: NextbestConfig,
        seed: int,
        start: dt.date,
        day: int = 0,
    ) -> None:
        self.population = population
        self.personal = personal
        self.defects = defects
        self.preferred_channel = preferred_channel
        self.params = params
        self.config = config
        self.seed = seed
        self.start = start
        self.day = day
        self.categories = world_categories(config)
        self.catalogue = Catalogue.build(config, self.categories, params, start)
        self.vocabulary = Vocabulary.build(self.categories)
        self._organic = OrganicActivity(seed, start, params, self.catalogue, self.vocabulary)

    # ------------------------------------------------------------------ construction
    @classmethod
    def create(
        cls,
        n_customers: int,
        seed: int = 0,
        start: dt.date | str = DEFAULT_START,
        config: NextbestConfig | None = None,
        params: WorldParams | None = None,
    ) -> World:
        """A fresh world of ``n_customers`` customers (ids 1..n) on ``start``.

        Raises
        ------
        BadInputError
            If ``n_customers`` is not positive or ``seed`` is negative.
        """
        if n_customers < 1:
            raise BadInputError(f"n_customers must be at least 1, got {n_customers}")
        if seed < 0:
            raise BadInputError(f"seed must be a non-negative integer, got {seed}")
        start = pd.Timestamp(start).date()
        config = config or load_config()
        params = params or WorldParams()
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,)))
        categories = world_categories(config)
        pop = create_population(n_customers, rng, params, categories, start)
        personal = generate_personal(pop, rng, params, config)
        preferred = _preferred_channels(pop, rng, config, params)
        return cls(pop, personal.frame, personal.defects, preferred, params=params, config=config, seed=seed, start=start)

    @classmethod
    def load(cls, con: duckdb.DuckDBPyConnection, config: NextbestConfig | None = None) -> World:
        """Rebuild the world, at the clock where it was written, from the ``ground_truth`` schema.

        The static draws are regenerated from the stored seed and parameters; the latent
        state (engagement, fatigue, consent, event days) is read back. Customers erased
        since (``nextbest data forget``) are left out.

        Raises
        ------
        NotFoundError
            If the warehouse holds no generated world.
        """
        try:
            row = con.execute(f"SELECT detail FROM {store.SCHEMA}.seeded_defects WHERE kind = 'params'").fetchone()
        except duckdb.CatalogException:
            row = None
        if row is None:
            raise NotFoundError("the warehouse holds no synthetic world; run `nextbest data generate` first")
        meta = json.loads(row[0])
        stored_config = NextbestConfig.model_validate(meta["config"])
        params = WorldParams.from_dict(meta["params"])
        world = cls.create(meta["n_customers"], meta["seed"], meta["start"], stored_config, params)
        state = con.execute(f"SELECT * FROM {store.SCHEMA}.customers ORDER BY customer_id").df()
        keep = world.population.positions(state["customer_id"].to_numpy(np.int64))
        world.population = Population.from_frame(state, world.categories)
        world.personal = world.personal.iloc[keep].reset_index(drop=True)
        world.preferred_channel = world.preferred_channel[keep]
        world.defects = world.defects[world.defects["customer_id"].isin(state["customer_id"])].reset_index(drop=True)
        world.day = int(meta["day"])
        if config is not None:
            world.config = config
            world.catalogue = Catalogue.build(config, world.categories, params, world.start)
        return world

    # ------------------------------------------------------------------ the truth
    def true_probabilities(
        self, customer_ids: Sequence[int] | np.ndarray | None = None, at: dt.date | dt.datetime | str | int | None = None
    ) -> pd.DataFrame:
        """True response probabilities for every customer × (offer, allowed channel).

        Parameters
        ----------
        customer_ids
            Customers to score (default: all).
        at
            Moment (date, timestamp or day offset) for seasonality and life events;
            default the world's clock. The latent state is always the current one.

        Returns
        -------
        DataFrame
            ``customer_id, offer_id, channel, p_control, p_contact, revenue`` where
            ``revenue`` is the expected revenue of one conversion.
        """
        ids = self.population.customer_id if customer_ids is None else np.asarray(customer_ids, dtype=np.int64)
        day = self.day if at is None else _day_of(self.start, at)
        try:
            return true_probabilities(self.population, self.catalogue, self.params, self.config, self.start, ids, day)
        except KeyError as exc:
            raise NotFoundError(f"customer_ids: {exc.args[0]}") from exc

    # ------------------------------------------------------------------ stepping
    def advance(self, day: int | dt.date | None = None) -> Activity:
        """Organic activity of ``day`` (default: the clock), then the clock moves to the next day."""
        d = self.day if day is None else _day_of(self.start, day)
        activity = self._organic.run(self.population, d)
        joined = np.flatnonzero(self.population.join_day == d)
        self.day = d + 1
        if joined.size == 0:
            return activity
        return Activity(activity.interactions, activity.transactions, activity.life_events, self.customers_frame(joined))

    def respond(self, decisions: pd.DataFrame, day: int | dt.date | None = None) -> Outcome:
        """Outcomes of ``decisions`` taken on ``day`` (default: the clock); contacts change the state.

        ``decisions`` needs ``decision_id, customer_id, offer_id, channel, contacted``
        (optionally ``ts``); rows with a null offer are "no action".
        """
        d = self.day if day is None else _day_of(self.start, day)
        return respond(
            self.population, decisions, d, seed=self.seed, start=self.start, params=self.params,
            config=self.config, catalogue=self.catalogue, vocabulary=self.vocabulary,
        )

    def historical_campaign(self, day: int | dt.date | None = None) -> pd.DataFrame:
        """The randomised campaign's ``decisions`` rows for ``day`` (see :mod:`nextbest.world.campaigns`)."""
        d = self.day if day is None else _day_of(self.start, day)
        return campaign_decisions(self.population, d, seed=self.seed, start=self.start, params=self.params, catalogue=self.catalogue)

    def frequency_test(self, day: int | dt.date | None = None) -> pd.DataFrame:
        """The contact-frequency test's ``decisions`` rows for ``day`` (see :mod:`nextbest.world.frequency`)."""
        d = self.day if day is None else _day_of(self.start, day)
        return frequency_decisions(self.population, d, seed=self.seed, start=self.start, params=self.params, catalogue=self.catalogue)

    # ------------------------------------------------------------------ tables
    def customers_frame(self, pos: np.ndarray | None = None) -> pd.DataFrame:
        """``customers`` table rows (the contract's columns) for positions ``pos`` (default all)."""
        pop = self.population
        pos = np.arange(len(pop)) if pos is None else np.asarray(pos)
        start = np.datetime64(self.start, "D")
        birth = (start + pop.birth_day[pos]).astype("datetime64[s]")
        frame = pd.DataFrame(
            {
                "customer_id": pop.customer_id[pos],
                "birth_date": np.where(pop.birth_known[pos], birth, np.datetime64("NaT")),
                "gender": np.asarray(GENDERS, dtype=object)[pop.gender[pos]],
                "first_name": self.personal["first_name"].iloc[pos].to_numpy(object),
                "postcode": self.personal["postcode"].iloc[pos].to_numpy(object),
                "region": np.asarray(REGIONS, dtype=object)[pop.region[pos]],
                "urbanity": urbanity_names(pop.urbanity[pos]).astype(object),
                "distance_to_store_km": pop.distance_km[pos],
                "member_since": (start + pop.join_day[pos]).astype("datetime64[s]"),
            }
        )
        for field, values in pop.consent.items():
            v = values[pos]
            frame[field] = pd.array(np.where(v == -1, None, v == 1), dtype="boolean")
        for field, values in pop.valid.items():
            frame[field] = values[pos]
        channels = np.asarray(self.catalogue.channel_ids + (None,), dtype=object)
        frame["preferred_channel"] = channels[self.preferred_channel[pos]]
        for col in ("email", "phone", "street_address"):
            frame[col] = self.personal[col].iloc[pos].to_numpy(object)
        return frame

    def ground_truth_customers(self) -> pd.DataFrame:
        """``ground_truth.customers``: every customer's latent traits and current state."""
        return self.population.to_frame(self.categories)

    def _meta(self) -> str:
        return json.dumps(
            {
                "seed": self.seed,
                "n_customers": int(self.population.customer_id.max()),
                "start": self.start.isoformat(),
                "day": self.day,
                "categories": list(self.categories),
                "params": json.loads(self.params.to_json()),
                "config": self.config.model_dump(mode="json"),
            }
        )

    def write_history(
        self,
        con: duckdb.DuckDBPyConnection,
        days: int,
        *,
        replace: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> dict[str, int]:
        """Simulate ``days`` days from the clock and write every table plus the ground truth.

        Organic activity runs every day; the historical campaign runs every
        ``params.campaign_every_days`` days, the contact-frequency test on its cells' days
        of its weeks (:mod:`nextbest.world.frequency`). Rows are appended in Arrow batches; outcomes
        that would fall after the last day are not written (they have not happened yet).

        Parameters
        ----------
        con
            Open warehouse connection (contract tables created).
        days
            Number of days to simulate.
        replace
            Empty the generated tables and the ground truth first; otherwise the
            warehouse must not hold customers yet.
        progress
            Called with the number of days done after each day.

        Returns
        -------
        dict
            Rows written per table.

        Raises
        ------
        BadInputError
            If ``days`` is not positive or the warehouse already holds data.
        """
        if days < 1:
            raise BadInputError(f"days must be at least 1, got {days}")
        if replace:
            store.clear(con)
        elif con.execute("SELECT count(*) FROM customers").fetchone()[0]:
            raise BadInputError("the warehouse already holds customers; use a fresh workspace or --replace to overwrite")
        store.ensure_ground_truth(con)
        con.execute("SET enable_progress_bar = false")  # we draw our own

        end_day = self.day + days
        end_ts = np.datetime64(self.start, "D") + end_day
        counts = dict.fromkeys(("interactions", "transactions", "life_events", "decisions", "responses", "decision_truth"), 0)
        buffers: dict[str, list[pd.DataFrame]] = {k: [] for k in counts}

        def flush() -> None:
            for table, frames in buffers.items():
                if not frames:
                    continue
                frame = pd.concat(frames, ignore_index=True)
                if "ts" in frame.columns:
                    frame = frame[frame["ts"] < end_ts]
                target = f"{store.SCHEMA}.decision_truth" if table == "decision_truth" else table
                counts[table] += store.append(con, target, frame, _COLUMNS[table])
                frames.clear()

        for i, day in enumerate(range(self.day, end_day)):
            activity = self.advance(day)
            buffers["interactions"].append(activity.interactions)
            buffers["transactions"].append(activity.transactions)
            buffers["life_events"].append(activity.life_events)
            parts = []
            if day % self.params.campaign_every_days == 0:
                parts.append(self.historical_campaign(day))
            if running(day, self.params):
                parts.append(self.frequency_test(day))
            parts = [p for p in parts if len(p)]
            if parts:
                decisions = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
                outcome = self.respond(decisions, day)
                buffers["decisions"].append(decisions)
                buffers["responses"].append(outcome.responses)
                buffers["interactions"].append(outcome.interactions)
                buffers["transactions"].append(outcome.transactions)
                buffers["decision_truth"].append(outcome.truth)
            if (i + 1) % FLUSH_EVERY_DAYS == 0:
                flush()
            if progress is not None:
                progress(i + 1)
        flush()

        joined = np.flatnonzero(self.population.join_day < end_day)
        customers = self.customers_frame(joined)
        counts["customers"] = store.append(con, "customers", customers)
        store.replace_table(con, f"{store.SCHEMA}.customers", self.ground_truth_customers())
        defects = self._written_defects(customers)
        con.execute(f"DELETE FROM {store.SCHEMA}.seeded_defects")
        store.append(con, f"{store.SCHEMA}.seeded_defects", defects)
        con.execute(f"INSERT INTO {store.SCHEMA}.seeded_defects VALUES ('params', NULL, ?)", [self._meta()])
        counts["seeded_defects"] = len(defects)
        return counts

    def _written_defects(self, customers: pd.DataFrame) -> pd.DataFrame:
        """Seeded defects as they show in the written ``customers`` table, plus ``unreachable``."""
        written = set(customers["customer_id"].tolist())
        d = self.defects[self.defects["customer_id"].isin(written)]
        is_dup = d["kind"].str.startswith("duplicate_")
        partner = pd.to_numeric(d["detail"].str.rsplit(" ", n=1).str[-1], errors="coerce")
        d = d[~is_dup | partner.isin(written)]  # a duplicate needs both customers in the table
        # A newsletter sign-up during the history may have granted consent since.
        consent_cols = [c.consent_field for c in self.config.channels.channels if c.consent_field]
        still_missing = set(customers.loc[customers[consent_cols].isna().all(axis=1), "customer_id"])
        d = d[(d["kind"] != "missing_consent_all") | d["customer_id"].isin(still_missing)]

        personal = [c for c in self.config.channels.channels if c.personal]
        reachable = np.zeros(len(customers), dtype=bool)
        for ch in personal:
            ok = customers[ch.consent_field].fillna(False).to_numpy(bool)
            if ch.validity_field is not None:
                ok &= customers[ch.validity_field].to_numpy(bool)
            reachable |= ok
        unreachable = pd.DataFrame(
            {"kind": "unreachable", "customer_id": customers["customer_id"].to_numpy()[~reachable], "detail": "no personal channel with consent and a valid contact"}
        )
        return pd.concat([d, unreachable], ignore_index=True)[["kind", "customer_id", "detail"]]


_COLUMNS: dict[str, tuple[str, ...]] = {
    "interactions": INTERACTION_COLUMNS,
    "transactions": TRANSACTION_COLUMNS,
    "life_events": LIFE_EVENT_COLUMNS,
    "decisions": DECISION_COLUMNS,
    "responses": RESPONSE_COLUMNS,
    "decision_truth": TRUTH_COLUMNS,
}


def _preferred_channels(pop: Population, rng: np.random.Generator, config: NextbestConfig, params: WorldParams) -> np.ndarray:
    """Stated preference: often the personal channel that works best on the customer, else random or none.

    Returns indices into the config's channels; ``len(channels)`` means no preference.
    """
    channels = config.channels.channels
    n = len(pop)
    personal = np.array([c.personal for c in channels])
    age_z = (pop.age - 45.0) / 15.0
    gains = np.stack(
        [
            params.channel_effect(c.id).base
            + params.channel_effect(c.id).age_slope * age_z
            + np.array([params.channel_effect(c.id).urban, 0.0, params.channel_effect(c.id).rural])[pop.urbanity]
            for c in channels
        ],
        axis=1,
    )
    gains[:, ~personal] = -np.inf
    best = gains.argmax(axis=1)
    personal_idx = np.flatnonzero(personal)
    random_pick = personal_idx[rng.integers(0, len(personal_idx), n)] if len(personal_idx) else np.full(n, len(channels))
    u = rng.random(n)
    return np.where(u < 0.45, best, np.where(u < 0.65, random_pick, len(channels)))
