"""One decision per customer against the oracle's: where does the champion lose profit?

The closed loop (``benchmarks/simulation.py``) answers "how much" over 30 days; this
answers "where", in seconds, on one day. On a workspace with a generated world and a
registered champion, every known customer gets the candidates the decision engine
allows on the day after the latest feature snapshot. Each candidate is scored by the
champion and by the world's true probabilities, and several policies pick at most one
action per customer. Every choice is valued with the truth (true uplift x expected
revenue of a conversion - contact cost) and reported as a share of the oracle's
choices:

``champion``                      the configured arbitration on the champion's uplift
``true channel level``            the champion, but its mean uplift per customer x channel
                                  replaced by the truth (its offer ranking within a channel kept)
``true offer ranking``            the champion's mean per customer x channel, the true ranking
                                  of offers within each channel
``true customer level``           the true mean per customer, the champion's ranking within it
``true channel mean``             the champion, shifted per channel so its mean uplift is the truth's
``true offer x channel mean``     the same per (offer, channel) pair: the most an average-effect
                                  correction per action (from randomised data) could repair

Comparing them splits the gap: whom to contact, through which channel, with which offer.
No exploration, caps or time: one snapshot, one greedy choice each.

Usage::

    .venv/bin/python benchmarks/decision_quality.py --workspace PATH   # e.g. after `make demo`: workspace/
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from nextbest import logfile
from nextbest.decisioning.cli import load_features, load_scorers
from nextbest.decisioning.engine import DecisionEngine
from nextbest.simulation.policies import OracleScorer, policy_config
from nextbest.warehouse.db import connect
from nextbest.workspace import Workspace
from nextbest.world import World


def _group_mean(values: np.ndarray, *keys: np.ndarray) -> np.ndarray:
    """Per row, the mean of ``values`` over the rows sharing its keys."""
    frame = pd.DataFrame({f"k{i}": k for i, k in enumerate(keys)} | {"v": values})
    return frame.groupby([f"k{i}" for i in range(len(keys))])["v"].transform("mean").to_numpy()


def greedy(cust: np.ndarray, expected_value: np.ndarray) -> np.ndarray:
    """Row of each customer's best candidate when it is worth more than doing nothing."""
    frame = pd.DataFrame({"cust": cust, "ev": expected_value})
    return frame[frame["ev"] > 0].groupby("cust")["ev"].idxmax().to_numpy()


def decision_quality(ws: Workspace, hour: int = 10) -> dict[str, object]:
    """Shares of the oracle's one-day profit for the champion and the mixed policies above."""
    config = ws.config()
    as_of, features, offer_history = load_features(ws, config)
    con = connect(ws.warehouse_path, read_only=True)
    try:
        world = World.load(con)
    finally:
        con.close()
    at = (as_of + pd.Timedelta(hours=hour)).to_pydatetime()
    policy = policy_config(config, "champion")
    oracle = OracleScorer(world)
    truth = DecisionEngine(policy, {"champion": oracle}).score_candidates(features, at, offer_history=offer_history)
    model = DecisionEngine(policy, load_scorers(ws, policy)).score_candidates(features, at, offer_history=offer_history)
    if not (np.array_equal(truth.cust, model.cust) and np.array_equal(truth.pair, model.pair)):
        raise RuntimeError("the oracle and the champion were offered different candidates")

    cust, channel, gain, cost = model.cust, model.channel, model.gain, model.cost
    u, tu = model.uplift, truth.uplift
    revenue = oracle.score(truth.frame)["value"].to_numpy(float)
    profit = tu * revenue - cost

    def value(uplift: np.ndarray) -> tuple[float, int]:
        rows = greedy(cust, uplift * gain - cost)
        return float(profit[rows].sum()), len(rows)

    u_ch, tu_ch = _group_mean(u, cust, channel), _group_mean(tu, cust, channel)
    u_c, tu_c = _group_mean(u, cust), _group_mean(tu, cust)
    policies = {
        "oracle": tu,
        "champion": u,
        "true channel level": tu_ch + (u - u_ch),
        "true offer ranking": u_ch + (tu - tu_ch),
        "true customer level": tu_c + (u - u_c),
        # What an estimate of each action's average effect (from randomised data) could repair at best.
        "true channel mean": u + _group_mean(tu, channel) - _group_mean(u, channel),
        "true offer x channel mean": u + _group_mean(tu, model.pair) - _group_mean(u, model.pair),
    }
    best, _ = value(tu)
    rows = {}
    for name, uplift in policies.items():
        total, contacts = value(uplift)
        rows[name] = {"profit": round(total, 1), "share_of_oracle": round(total / best, 3), "contacts": contacts}
    return {
        "workspace": str(ws.root), "at": str(at), "customers": len(model.ids), "candidates": len(cust),
        "uplift_correlation": round(float(np.corrcoef(u, tu)[0, 1]), 3),
        "within_customer_correlation": round(float(np.corrcoef(u - u_c, tu - tu_c)[0, 1]), 3),
        "policies": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, required=True, help="Workspace with a generated world and a champion.")
    parser.add_argument("--hour", type=int, default=10, help="Hour of the decision on the day after the snapshot.")
    args = parser.parse_args()
    print(json.dumps(decision_quality(Workspace(args.workspace), args.hour), indent=2))


if __name__ == "__main__":
    logfile.route_script_output(__file__)
    main()
