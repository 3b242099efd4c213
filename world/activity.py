"""Organic daily activity: interactions, orders and life events, and the state's drift.

Each day, every active customer draws a Poisson number of interactions at their current
engagement rate (seasonal, more at weekends) and a Poisson number of orders; events get
a family from the customer's mix, an action, and a category from their affinity. Then
engagement swings (AR(1)), fatigue decays and life events happen. Counts are drawn by
CDF inversion at hashed uniforms (:mod:`nextbest.world.rng`), so a customer's draws do
not depend on other customers or on what a policy did to them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from scipy.special import ndtri

from nextbest.world import rng as wr
from nextbest.world.params import SEGMENTS, WorldParams
from nextbest.world.population import Population
from nextbest.world.truth import Catalogue, category_season, day_of_year
from nextbest.world.vocabulary import FAMILIES, Vocabulary

INTERACTION_COLUMNS = ("customer_id", "ts", "type", "channel", "offer_id", "value")
TRANSACTION_COLUMNS = ("customer_id", "ts", "order_id", "category", "amount", "margin")
LIFE_EVENT_COLUMNS = ("customer_id", "ts", "event_type", "event_date")
LIFE_EVENT_TYPES = ("moved", "contract_end", "newsletter_signup")

#: Relative price level of a category's order lines.
CATEGORY_PRICE: dict[str, float] = {"electronics": 3.0, "home": 1.6, "garden": 1.8, "food": 0.5, "stationery": 0.4, "books": 0.6}
#: Per latent segment: (extra events per day, their types). Promotion-minded persuadables
#: follow and share on social media and look at offers; sleeping dogs call the service
#: desk and complain; sure things fill carts and wish lists. This is how the segment -
#: the main driver of uplift - leaves a trace in the raw tables.
SEGMENT_SIGNATURES: dict[str, tuple[float, tuple[str, ...]]] = {
    "persuadable": (0.06, ("social.like", "social.share", "social.follow", "web.view.offer", "app.screen.offers")),
    "sleeping_dog": (0.045, ("service.complaint", "service.call", "service.chat", "email.preferences")),
    "sure_thing": (0.05, ("web.wishlist_add.home", "store.visit", "web.login")),
}
CONTRACT_NOTICE_DAYS = 30  # a contract's end becomes known this long before it
CONTRACT_TERM_DAYS = 730


@dataclass(frozen=True)
class Activity:
    """What happened organically on one day (contract table columns, in order).

    ``customers`` holds the rows of customers who joined that day, for a simulator that
    extends the warehouse (``World.write_history`` writes the table at the end instead).
    """

    interactions: pd.DataFrame
    transactions: pd.DataFrame
    life_events: pd.DataFrame
    customers: pd.DataFrame


def timestamps(start: dt.date, day: int | np.ndarray, seconds: np.ndarray) -> np.ndarray:
    """``start + day`` plus ``seconds`` as ``datetime64[us]``."""
    base = np.datetime64(start, "s") + np.asarray(day, dtype=np.int64) * 86_400
    return (base + np.asarray(seconds).astype(np.int64)).astype("datetime64[us]")


def interaction_frame(
    customer_id: np.ndarray, ts: np.ndarray, type_code: np.ndarray, vocab: Vocabulary,
    channel: np.ndarray | str | None, offer_id: np.ndarray | None, value: np.ndarray | None,
) -> pd.DataFrame:
    n = len(customer_id)
    return pd.DataFrame(
        {
            "customer_id": customer_id.astype(np.int64),
            "ts": ts,
            "type": pd.Categorical.from_codes(type_code, categories=vocab.types),
            "channel": np.full(n, channel, dtype=object) if channel is None or isinstance(channel, str) else channel,
            "offer_id": np.full(n, None, dtype=object) if offer_id is None else offer_id,
            "value": np.full(n, np.nan) if value is None else value,
        }
    )


class OrganicActivity:
    """Generator of one day's organic activity for a population (mutates its state).

    Parameters
    ----------
    seed, start, params, catalogue, vocabulary
        The world's seed, start date, parameters, catalogue and interaction vocabulary.
    """

    def __init__(self, seed: int, start: dt.date, params: WorldParams, catalogue: Catalogue, vocabulary: Vocabulary) -> None:
        self.seed = seed
        self.start = start
        self.params = params
        self.catalogue = catalogue
        self.vocabulary = vocabulary
        cats = catalogue.categories
        self._price = np.array([CATEGORY_PRICE.get(c, 1.0) for c in cats])
        margin = {c: [] for c in cats}
        for k, rate in zip(catalogue.offer_category, catalogue.offer_margin_rate):
            margin[cats[k]].append(rate)
        self._margin_rate = np.array([np.mean(margin[c]) if margin[c] else 0.3 for c in cats])
        fam = {f: i for i, f in enumerate(FAMILIES)}
        self._checkout = vocabulary.index("web.checkout")
        self._store_visit = vocabulary.index("store.visit")
        self._signup = vocabulary.index("email.newsletter_signup")
        self._fam = fam

    # ------------------------------------------------------------------ helpers
    def _key(self, stream: str, day: int) -> np.uint64:
        return wr.stream_key(self.seed, stream, day)

    def _family_cdf(self, pop: Population, pos: np.ndarray) -> np.ndarray:
        """Each customer's cumulative family mix (web, app, email, store, service, social)."""
        email_ok = np.ones(len(pos), dtype=bool)
        if "consent_email" in pop.consent:
            email_ok = (pop.consent["consent_email"][pos] == 1) & pop.valid.get("valid_email", email_ok)[pos]
        app = pop.app_user[pos]
        w = np.stack(
            [
                np.where(app, 0.40, 0.55),
                np.where(app, 0.30, 0.0),
                np.where(email_ok, 0.10, 0.0),
                0.14 * np.exp(-pop.distance_km[pos] / 15.0),
                0.03 * np.exp(0.8 * pop.grumpiness[pos]),
                np.full(len(pos), 0.03),
            ],
            axis=1,
        )
        return np.cumsum(w / w.sum(axis=1, keepdims=True), axis=1)

    def _rate_multiplier(self, day: int) -> float:
        doy = int(day_of_year(self.start, day))
        weekday = (np.datetime64(self.start, "D") + day).astype("datetime64[D]").view("int64") % 7  # 0 = Thursday
        weekend = weekday in (2, 3)  # Saturday, Sunday
        return float((1 + self.params.activity_seasonality * np.cos(2 * np.pi * (doy - 344) / 365.25)) * (1.15 if weekend else 0.96))

    # ------------------------------------------------------------------ the day
    def run(self, pop: Population, day: int) -> Activity:
        """Draw day ``day``'s activity, then move the state to the next day.

        ``Activity.customers`` is left empty: the world fills in the joiners' rows.
        """
        p = self.params
        active = pop.join_day <= day
        ids = pop.customer_id
        mult = self._rate_multiplier(day)

        # ---- interactions
        lam = np.exp(pop.eng_mu + pop.eng_x) * mult * active
        counts = wr.poisson(wr.uniforms(self._key("activity.count", day), ids), lam)
        interactions = self._interactions(pop, day, counts)
        signature = self._signature(pop, day, active, mult)

        # ---- orders
        rate = p.orders_per_day * pop.buy_rate * np.exp(0.7 * (pop.eng_mu + pop.eng_x - np.log(p.interactions_per_day))) * mult * active
        n_orders = wr.poisson(wr.uniforms(self._key("orders.count", day), ids), rate)
        transactions, order_events = self._orders(pop, day, n_orders)

        # ---- life events and state drift
        life_events, signup_events = self._life_events(pop, day, active)
        self._drift(pop, day)
        return Activity(
            interactions=pd.concat([interactions, signature, order_events, signup_events], ignore_index=True),
            transactions=transactions,
            life_events=life_events,
            customers=pd.DataFrame(),
        )

    def _interactions(self, pop: Population, day: int, counts: np.ndarray) -> pd.DataFrame:
        vocab = self.vocabulary
        who = np.flatnonzero(counts)
        c = counts[who]
        pos = np.repeat(who, c)
        starts = np.repeat(np.cumsum(c) - c, c)
        k = np.arange(len(pos)) - starts  # event number within the customer's day
        cid = pop.customer_id[pos]

        fam_cdf = self._family_cdf(pop, who)
        local = np.repeat(np.arange(len(who)), c)
        fam = wr.choice_cdf(wr.uniforms(self._key("activity.family", day), cid, k), fam_cdf[local])
        action = wr.choice_cdf(wr.uniforms(self._key("activity.action", day), cid, k), vocab.action_cdf[fam])
        aff_cdf = np.cumsum(pop.affinity[pos], axis=1)
        category = wr.choice_cdf(wr.uniforms(self._key("activity.category", day), cid, k) * aff_cdf[:, -1], aff_cdf)
        type_code = vocab.table[fam, action, category]

        u_t = wr.uniforms(self._key("activity.time", day), cid, k)
        seconds = 6 * 3600 + (u_t**0.8) * 17.5 * 3600  # mostly daytime, tail into the evening
        z = ndtri(wr.uniforms(self._key("activity.value", day), cid, k))
        value = np.full(len(pos), np.nan)
        dwell = (fam == self._fam["web"]) | (fam == self._fam["app"])
        value[dwell] = np.round(np.exp(3.6 + 0.9 * z[dwell]), 1)
        review = type_code == vocab.index("social.review")
        value[review] = np.clip(np.round(4.0 - 0.6 * pop.grumpiness[pos[review]] + 0.8 * z[review]), 1, 5)
        channel = np.asarray(FAMILIES, dtype=object)[fam]
        return interaction_frame(cid, timestamps(self.start, day, seconds), type_code, vocab, channel, None, value)

    def _signature(self, pop: Population, day: int, active: np.ndarray, mult: float) -> pd.DataFrame:
        """Extra events that betray a customer's latent segment (see SEGMENT_SIGNATURES)."""
        vocab = self.vocabulary
        rate = np.array([SEGMENT_SIGNATURES.get(seg, (0.0, ()))[0] for seg in SEGMENTS])[pop.segment] * mult * active
        counts = wr.poisson(wr.uniforms(self._key("activity.signature", day), pop.customer_id), rate)
        who = np.flatnonzero(counts)
        c = counts[who]
        pos = np.repeat(who, c)
        k = np.arange(len(pos)) - np.repeat(np.cumsum(c) - c, c)
        cid = pop.customer_id[pos]
        table = np.full((len(SEGMENTS), max(len(t) for _, t in SEGMENT_SIGNATURES.values())), -1)
        for s_idx, seg in enumerate(SEGMENTS):
            types = SEGMENT_SIGNATURES.get(seg, (0.0, ()))[1]
            for j in range(table.shape[1]):
                if types:
                    table[s_idx, j] = vocab.index(types[j % len(types)])
        pick = np.floor(wr.uniforms(self._key("activity.signature.type", day), cid, k) * table.shape[1]).astype(np.int64)
        type_code = table[pop.segment[pos], pick]
        seconds = 7 * 3600 + wr.uniforms(self._key("activity.signature.time", day), cid, k) * 15 * 3600
        channel = np.asarray([t.split(".")[0] for t in vocab.types], dtype=object)[type_code]
        return interaction_frame(cid, timestamps(self.start, day, seconds), type_code, vocab, channel, None, None)

    def _orders(self, pop: Population, day: int, n_orders: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
        p = self.params
        who = np.flatnonzero(n_orders)
        c = n_orders[who]
        pos = np.repeat(who, c)
        k = np.arange(len(pos)) - np.repeat(np.cumsum(c) - c, c)
        cid = pop.customer_id[pos]
        key = self._key("orders.detail", day)

        season = np.exp(category_season(p, self.catalogue.categories, int(day_of_year(self.start, day))))
        w = pop.affinity[pos] * season
        cdf = np.cumsum(w, axis=1)
        first = wr.choice_cdf(wr.uniforms(key, cid, k, 1) * cdf[:, -1], cdf)
        second = wr.choice_cdf(wr.uniforms(key, cid, k, 2) * cdf[:, -1], cdf)
        two = (wr.uniforms(key, cid, k, 3) < 0.35) & (second != first)
        line_order = np.concatenate([np.arange(len(pos)), np.flatnonzero(two)])
        line_cat = np.concatenate([first, second[two]])
        lpos = pos[line_order]
        is_second = np.arange(len(line_order)) >= len(pos)
        z = ndtri(wr.uniforms(key, cid[line_order], k[line_order], 4 + is_second))
        amount = np.round(p.order_value * pop.value_mult[lpos] * self._price[line_cat] * np.exp(0.5 * z - 0.125), 2)
        margin = np.round(amount * self._margin_rate[line_cat], 2)
        seconds = 8 * 3600 + wr.uniforms(key, cid, k, 5) * 13 * 3600
        ts = timestamps(self.start, day, seconds)
        order_id = pc.binary_join_element_wise(
            "o", pa.array(cid.astype(str)), pa.array(np.full(len(pos), str(day))), pa.array(k.astype(str)), "-"
        ).to_numpy(zero_copy_only=False)
        transactions = pd.DataFrame(
            {
                "customer_id": cid[line_order],
                "ts": ts[line_order],
                "order_id": order_id[line_order],
                "category": np.asarray(self.catalogue.categories, dtype=object)[line_cat],
                "amount": amount,
                "margin": margin,
            }
        )
        # Near customers mostly buy in store; the others check out online.
        in_store = wr.uniforms(key, cid, k, 6) < 0.6 * np.exp(-pop.distance_km[pos] / 12.0)
        type_code = np.where(in_store, self._store_visit, self._checkout)
        channel = np.where(in_store, "store", "web").astype(object)
        events = interaction_frame(cid, ts, type_code, self.vocabulary, channel, None, None)
        return transactions, events

    def _life_events(self, pop: Population, day: int, active: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
        p = self.params
        ids = pop.customer_id
        key = self._key("life", day)
        moved = np.flatnonzero(active & (wr.uniforms(key, ids, 1) < p.moved_rate))
        pop.moved_day[moved] = day
        pop.eng_x[moved] += 0.2  # a move brings a burst of interest (furnishing, new store)

        notice = np.flatnonzero(active & (pop.contract_end_day - CONTRACT_NOTICE_DAYS == day))
        renewed = pop.contract_end_day + 15 == day
        pop.contract_end_day[renewed] += CONTRACT_TERM_DAYS

        email_ok = pop.valid.get("valid_email", np.ones(len(pop), dtype=bool))
        fresh = (day - pop.join_day) < 30
        p_signup = p.newsletter_signup_rate * np.where(fresh, 4.0, 1.0)
        signup = np.flatnonzero(active & email_ok & (wr.uniforms(key, ids, 2) < p_signup))
        pop.newsletter_day[signup] = day
        if "consent_email" in pop.consent:
            pop.consent["consent_email"][signup] = 1  # signing up is an opt-in

        event_pos = np.concatenate([moved, notice, signup])
        kind = np.repeat(np.arange(3), [len(moved), len(notice), len(signup)])
        seconds = 7 * 3600 + wr.uniforms(key, ids[event_pos], 3 + kind) * 15 * 3600
        ts = timestamps(self.start, day, seconds)
        event_day = np.where(kind == 1, pop.contract_end_day[event_pos], day)
        life = pd.DataFrame(
            {
                "customer_id": ids[event_pos],
                "ts": ts,
                "event_type": np.asarray(LIFE_EVENT_TYPES, dtype=object)[kind],
                "event_date": (np.datetime64(self.start, "D") + event_day).astype("datetime64[s]"),
            }
        )
        signup_events = interaction_frame(
            ids[signup], ts[kind == 2], np.full(len(signup), self._signup), self.vocabulary, "email", None, None
        )
        return life, signup_events

    def _drift(self, pop: Population, day: int) -> None:
        p = self.params
        shock = ndtri(wr.uniforms(self._key("engagement.shock", day), pop.customer_id))
        pop.eng_x *= p.engagement_ar
        pop.eng_x += p.engagement_shock_sd * shock
        pop.fatigue *= 0.5 ** (1.0 / p.fatigue_half_life_days)

