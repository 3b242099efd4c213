"""Regret attribution in the closed loop: each decision valued against the oracle's, on the policy's own world.

:class:`RegretBook` observes a simulation (``simulate(..., observer=book)``). Every
day, before the world answers, it scores the same audience's candidates with the
world's truth and the same contact history the policy decided with, and books each
decision twice, both valued with the truth (true uplift x expected revenue of a
conversion - contact cost):

``oracle``   the best candidate by true expected value, or nothing when none is positive;
``policy``   what the policy chose (0 when it contacted nobody).

:func:`summarise` breaks the shares down by period, by whether a trigger selected the
customer, and by the customer's contacts in the last 7 days next to how many
historical contacts the model learnt from at that pressure: the loop moves
customers out of the data a model was trained on (``docs/synthetic-world.md``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nextbest.config import NextbestConfig
from nextbest.decisioning.engine import DecisionEngine
from nextbest.simulation.audience import trigger_mask
from nextbest.simulation.policies import OracleScorer, policy_config
from nextbest.simulation.runner import DecidedDay
from nextbest.training.dataset import pressure_query, pressure_sql
from nextbest.warehouse.db import connect
from nextbest.workspace import Workspace

#: Contacts in the last 7 days at and above this are one row of the pressure table.
PRESSURE_CAP = 3


class RegretBook:
    """A :data:`~nextbest.simulation.runner.DecisionObserver` booking each decision against the truth."""

    def __init__(self) -> None:
        self.rows: list[pd.DataFrame] = []

    def __call__(self, seen: DecidedDay) -> None:
        oracle = OracleScorer(seen.world)
        engine = DecisionEngine(truth_config(seen.config), {"oracle": oracle})
        sc = engine.score_candidates(seen.audience, seen.at, history=seen.history, offer_history=seen.offer_history)
        revenue = oracle.score(sc.frame)["value"].to_numpy(float)
        candidates = pd.DataFrame({
            "customer_id": sc.ids[sc.cust], "offer_id": engine.offer_ids[sc.offer],
            "channel": engine.channel_ids[sc.channel], "profit": sc.uplift * revenue - sc.cost,
        })
        # The oracle's own choice through the engine: forced triggers, capacities and the
        # "no action" threshold apply to it exactly as they do to the policy.
        best = engine.decide(seen.audience, seen.at, history=seen.history, offer_history=seen.offer_history,
                             seed=0, record=False).decisions
        ids = seen.audience["customer_id"].to_numpy(np.int64)
        best, chosen = (_choices(d, candidates).reindex(ids) for d in (best, seen.decisions))
        self.rows.append(pd.DataFrame({
            "day": seen.day, "customer_id": ids, "triggered": trigger_mask(seen.audience, seen.config),
            "contacts_7d": seen.audience["contacts_7d"].fillna(0).to_numpy() if "contacts_7d" in seen.audience else np.nan,
            "oracle": best["profit"].fillna(0.0).to_numpy(),
            "oracle_action": best["action"].to_numpy(),
            # A contact the truth has no candidate for would show as NaN, not as 0.
            "policy": np.where(chosen["action"].notna(), chosen["profit"], 0.0),
            "policy_action": chosen["action"].to_numpy(),
            "contacted": chosen["action"].notna().to_numpy(),
        }))

    def frame(self) -> pd.DataFrame:
        """One row per decision: ``day, customer_id, triggered, contacts_7d``, the true profit and
        ``offer/channel`` of the ``oracle``'s and the ``policy``'s choice (no action: 0 and None), ``contacted``."""
        return pd.concat(self.rows, ignore_index=True) if self.rows else pd.DataFrame()


def _choices(decisions: pd.DataFrame, candidates: pd.DataFrame) -> pd.DataFrame:
    """``action`` (``offer/channel``) and true ``profit`` of each contacted decision, by ``customer_id``."""
    made = decisions[decisions["contacted"].astype(bool) & decisions["offer_id"].notna()]
    out = made[["customer_id", "offer_id", "channel"]].merge(
        candidates, on=["customer_id", "offer_id", "channel"], how="left", validate="one_to_one"
    )
    return pd.DataFrame({"action": (out["offer_id"] + "/" + out["channel"]).to_numpy(), "profit": out["profit"].to_numpy()},
                        index=pd.Index(out["customer_id"].to_numpy(np.int64), name="customer_id"))


def truth_config(config: NextbestConfig) -> NextbestConfig:
    """``config`` deciding as the oracle: one truth arm, no exploration, arbitration on uplift.

    Candidates (consent, eligibility, caps) depend on the contact policy, offers and
    channels only, which stay the policy's; the rules policy's "response" objective does not.
    """
    oracle = policy_config(config, "oracle")
    arbitration = oracle.policy.arbitration.model_copy(update={"objective": "uplift"})
    return oracle.model_copy(update={"policy": oracle.policy.model_copy(update={"arbitration": arbitration})})


def historical_pressure(ws: Workspace, config: NextbestConfig) -> pd.Series:
    """Contacted historical decisions per ``contacts_7d`` at their own time, counted by the training
    set's own statement (the model's training support)."""
    pressure = pressure_sql(["contacts_7d"], config)
    con = connect(ws.warehouse_path, read_only=True)
    try:
        frame = con.execute(
            f"""
            WITH d AS (SELECT decision_id, customer_id, ts FROM decisions
                       WHERE experiment IN ('historical', 'frequency_test') AND contacted AND offer_id IS NOT NULL),
            pr AS ({pressure_query(pressure)})
            SELECT least(coalesce(pr.contacts_7d, 0), ?) AS pressure, count(*) AS n
            FROM d LEFT JOIN pr USING (decision_id) GROUP BY ALL
            """,
            [PRESSURE_CAP],
        ).df()
    finally:
        con.close()
    return frame.set_index("pressure")["n"]


def summarise(book: pd.DataFrame, support: pd.Series) -> dict[str, object]:
    """Shares of the oracle's profit by period x trigger and by contact pressure."""

    def table(keys: list[str]) -> list[dict[str, object]]:
        g = book.groupby(keys).agg(
            decisions=("customer_id", "size"), contacted=("contacted", "mean"),
            oracle=("oracle", "sum"), policy=("policy", "sum"),
        )
        g["share"] = g["policy"] / g["oracle"]
        return [
            {**dict(zip(keys, k if isinstance(k, tuple) else (k,), strict=True)),
             **{c: int(v) if c == "decisions" else round(float(v), 3 if c in ("share", "contacted") else 1)
                for c, v in row.items()}}
            for k, row in g.iterrows()
        ]

    book = book.assign(period=(book["day"] - book["day"].min()) // 10 * 10,
                       pressure=book["contacts_7d"].clip(upper=PRESSURE_CAP).astype(int))
    by_pressure = table(["pressure"])
    for row in by_pressure:
        row["historical_contacts"] = int(support.get(row["pressure"], 0))
    return {
        "decisions": len(book), "oracle": round(float(book["oracle"].sum()), 1),
        "policy": round(float(book["policy"].sum()), 1),
        "share": round(float(book["policy"].sum() / book["oracle"].sum()), 3),
        "by_period_and_trigger": table(["period", "triggered"]),
        "by_contacts_7d": by_pressure,
    }
