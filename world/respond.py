"""How customers answer decisions, and how contacts change them.

A decision converts when its paired uniform falls below the true probability of its
arm (``p_contact`` if contacted, ``p_control`` if not): the draw is keyed by customer,
day, offer and channel, so the counterfactual outcomes of two policies are coupled.
Contacted customers may also open, click or visit (conversions imply a click or visit),
complain or unsubscribe (more when annoyed: sleeping dogs, grumpy, fatigued). Contacts
raise fatigue; opens and conversions raise engagement, complaints and annoyance lower it;
an unsubscribe withdraws consent for the channel.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import ndtri

from nextbest.config import NextbestConfig
from nextbest.errors import BadInputError
from nextbest.world import rng as wr
from nextbest.world.activity import interaction_frame, timestamps
from nextbest.world.params import SEGMENTS, WorldParams
from nextbest.world.population import Population
from nextbest.world.truth import Catalogue, engagement_z, row_truth, sigmoid
from nextbest.world.vocabulary import Vocabulary

RESPONSE_COLUMNS = ("decision_id", "ts", "outcome", "revenue")
TRUTH_COLUMNS = ("decision_id", "customer_id", "p_contact", "p_control", "expected_revenue")
REQUIRED_DECISION_COLUMNS = ("decision_id", "customer_id", "offer_id", "channel", "contacted")

_SLEEPING_DOG = SEGMENTS.index("sleeping_dog")


@dataclass(frozen=True)
class Outcome:
    """Everything a batch of decisions caused.

    Attributes
    ----------
    responses
        ``responses`` table rows (timestamps up to the response window after the decision).
    interactions, transactions
        Induced rows (opens, clicks, visits, complaints; conversion orders).
    truth
        ``ground_truth.decision_truth`` rows: the true probabilities of each decision.
    """

    responses: pd.DataFrame
    interactions: pd.DataFrame
    transactions: pd.DataFrame
    truth: pd.DataFrame


def _validate(decisions: pd.DataFrame, catalogue: Catalogue) -> None:
    missing = [c for c in REQUIRED_DECISION_COLUMNS if c not in decisions.columns]
    if missing:
        raise BadInputError(f"decisions: missing column(s) {missing}; pass {list(REQUIRED_DECISION_COLUMNS)} (+ optional ts)")
    acted = decisions["offer_id"].notna()
    offers = pd.unique(decisions.loc[acted, "offer_id"])
    bad_offer = sorted(o for o in offers if o not in catalogue.offer_ids)
    if bad_offer:
        raise BadInputError(f"decisions.offer_id: unknown offer(s) {bad_offer[:5]}; use ids from offers.yaml")
    channels = pd.unique(decisions.loc[acted, "channel"])
    bad_channel = sorted(str(c) for c in channels if c not in catalogue.channel_ids)
    if bad_channel:
        raise BadInputError(f"decisions.channel: unknown or missing channel(s) {bad_channel[:5]}; use ids from channels.yaml")


def respond(
    pop: Population,
    decisions: pd.DataFrame,
    day: int,
    *,
    seed: int,
    start: dt.date,
    params: WorldParams,
    config: NextbestConfig,
    catalogue: Catalogue,
    vocabulary: Vocabulary,
) -> Outcome:
    """Outcomes of ``decisions`` made on ``day``; mutates ``pop`` (fatigue, engagement, consent).

    Rows with a null ``offer_id`` ("no action") cause nothing. Decisions without ``ts``
    are taken at 10:00 of ``day``.
    """
    _validate(decisions, catalogue)
    d = decisions.loc[decisions["offer_id"].notna()]
    try:
        pos = pop.positions(d["customer_id"].to_numpy(np.int64))
    except KeyError as exc:
        raise BadInputError(f"decisions.customer_id: {exc.args[0]}; decide only for the world's customers") from exc
    offer = catalogue.offer_index(d["offer_id"].to_numpy())
    channel = catalogue.channel_index(d["channel"].to_numpy())
    contacted = d["contacted"].fillna(False).to_numpy(bool)
    decision_id = d["decision_id"].to_numpy(object)
    cid = pop.customer_id[pos]
    if "ts" in d.columns and d["ts"].notna().all():
        ts0 = d["ts"].to_numpy("datetime64[us]")
    else:
        ts0 = timestamps(start, day, np.full(len(d), 10 * 3600))

    p_control, p_contact, revenue = row_truth(pop, catalogue, params, config, start, pos, offer, channel, day)
    key = wr.stream_key(seed, "respond", day)

    def u(outcome: int) -> np.ndarray:
        return wr.uniforms(key, cid, offer, channel, outcome)

    window = config.training.response_window_days
    converted = u(0) < np.where(contacted, p_contact, p_control)
    delay_days = np.minimum(np.floor(np.log(u(1)) / np.log(1 - 0.25)), window - 1)
    conv_ts = ts0 + ((delay_days * 86_400 + u(2) * 36_000) * 1e6).astype("timedelta64[us]")
    realised = np.round(revenue * np.exp(params.conversion_revenue_sd * ndtri(u(3)) - params.conversion_revenue_sd**2 / 2), 2)

    ch_ids = np.asarray(catalogue.channel_ids, dtype=object)
    effects = [params.channel_effect(c) for c in catalogue.channel_ids]
    open_rate = np.array([e.open_rate for e in effects])[channel]
    click_rate = np.array([e.click_rate for e in effects])[channel]
    visit_rate = np.array([e.visit_rate for e in effects])[channel]
    intr = catalogue.channel_intrusiveness[channel]
    z_eng = engagement_z(pop, pos, params)

    has_open = open_rate > 0
    open_logit = np.log(np.maximum(open_rate, 1e-9) / (1 - open_rate))
    opened = contacted & has_open & ((u(4) < sigmoid(open_logit + 0.5 * z_eng)) | converted)
    clicks_channel = (click_rate > 0) & (visit_rate == 0)
    clicked = contacted & clicks_channel & (((u(5) < click_rate) & (opened | ~has_open)) | converted)
    opened |= clicked & has_open
    visited = contacted & (visit_rate > 0) & ((u(6) < visit_rate * (1 + np.exp(-pop.distance_km[pos] / 10))) | converted)

    annoy = np.where(pop.segment[pos] == _SLEEPING_DOG, 8.0, 1.0) * np.exp(0.5 * pop.grumpiness[pos]) * (1 + pop.fatigue[pos])
    complained = contacted & (u(7) < params.complaint_rate * intr * annoy)
    personal = np.array([c is not None for c in catalogue.channel_consent])[channel]
    unsubscribed = contacted & personal & (u(8) < params.unsubscribe_rate * (intr + 0.3) * annoy)
    reaction_ts = ts0 + ((u(9) * 2 * 86_400) * 1e6).astype("timedelta64[us]")  # within two days

    responses = pd.concat(
        [
            pd.DataFrame({"decision_id": decision_id[m], "ts": t[m], "outcome": name, "revenue": r[m] if r is not None else np.nan})
            for name, m, t, r in (
                ("open", opened, reaction_ts, None),
                ("click", clicked, reaction_ts + np.timedelta64(600, "s"), None),
                ("visit", visited, conv_ts, None),
                ("conversion", converted, conv_ts + np.timedelta64(1800, "s"), realised),
                ("complaint", complained, reaction_ts + np.timedelta64(1200, "s"), None),
                ("unsubscribe", unsubscribed, reaction_ts + np.timedelta64(1500, "s"), None),
            )
        ],
        ignore_index=True,
    )

    # ---- induced interactions: what the customer visibly did because of the contact
    ch_name = ch_ids[channel]
    open_type = np.where(ch_name == "email", vocabulary.index("email.open"), vocabulary.index("app.push_open"))
    click_type = np.where(ch_name == "email", vocabulary.index("email.click"), vocabulary.index("web.view.offer"))
    parts = []
    for mask, type_code, t in (
        (opened, open_type, reaction_ts),
        (clicked, click_type, reaction_ts + np.timedelta64(600, "s")),
        (visited, np.full(len(d), vocabulary.index("store.visit")), conv_ts),
        (complained, np.full(len(d), vocabulary.index("service.complaint")), reaction_ts + np.timedelta64(1200, "s")),
    ):
        parts.append(
            interaction_frame(cid[mask], t[mask], type_code[mask], vocabulary, ch_name[mask], d["offer_id"].to_numpy(object)[mask], None)
        )
    interactions = pd.concat(parts, ignore_index=True)

    conv = np.flatnonzero(converted)
    k = catalogue.offer_category[offer[conv]]
    transactions = pd.DataFrame(
        {
            "customer_id": cid[conv],
            "ts": conv_ts[conv] + np.timedelta64(1800, "s"),
            "order_id": np.char.add("c-", decision_id[conv].astype(str)).astype(object),
            "category": np.asarray(catalogue.categories, dtype=object)[k],
            "amount": realised[conv],
            "margin": np.round(realised[conv] * catalogue.offer_margin_rate[offer[conv]], 2),
        }
    )

    truth = pd.DataFrame(
        {"decision_id": decision_id, "customer_id": cid, "p_contact": p_contact, "p_control": p_control, "expected_revenue": revenue}
    )

    # ---- state: contacts tire, engage or annoy; unsubscribes withdraw consent
    c_pos = pos[contacted]
    np.add.at(pop.fatigue, c_pos, np.where(personal[contacted], 1.0, 0.2))
    delta = 0.05 * opened + 0.05 * clicked + 0.1 * converted - 0.15 * complained
    delta -= contacted * (pop.segment[pos] == _SLEEPING_DOG) * 0.05 * intr
    np.add.at(pop.eng_x, pos, delta)
    for h, field in enumerate(catalogue.channel_consent):
        if field is not None:
            pop.consent[field][pos[unsubscribed & (channel == h)]] = 0
    return Outcome(responses=responses, interactions=interactions, transactions=transactions, truth=truth)
