"""Closed-loop benchmark: does the champion earn money, compared with the baselines and the oracle?

For each seed, builds the demo's world (same size and history as ``nextbest demo``),
its features and a champion (optionally tuned), then simulates the champion, the
rules and random baselines and the oracle for 30 paired days, and prints one JSON
line per seed plus a summary line:

    python benchmarks/simulation.py                    # seeds 0 1 2, demo size
    python benchmarks/simulation.py --seeds 0 --customers 10000
    python benchmarks/simulation.py --learner shift     # another uplift learner for the champion
    python benchmarks/simulation.py --learner shift --set "effect_ignored_features=[offer_id]"   # any training.yaml key
    python benchmarks/simulation.py --set "policy.contact.max_contacts=1"   # FILE.dotted.key for another config file
    python benchmarks/simulation.py --seeds 0 --customers 50000 --days 60 --retrain-every 7 --baselines --jobs 2 --frozen

Each line carries the champion's share of the oracle per period (``--period-days``, 10 by
default): the learning curve. It rises with the world's seasons too, for a champion that is
never retrained; ``--frozen`` simulates that champion as well, on the same draws, and the
summary gives what retraining (``--retrain-every``) added in the last 20 days.

Targets (``docs/synthetic-world.md``, "Decisions that keep learning"): on every seed of
``--seeds 0 1 2 3 4`` the champion's incremental profit ≥ 1.2× rules and ≥ 1.5× random, with
zero contact-policy violations; with ``--customers 50000 --days 60 --retrain-every 7`` its share
of the oracle in the last 20 days ≥ its share in the first 20. ``champion_vs_rules`` and
``champion_vs_random`` are gains (0.2 = 1.2×). The summary line gives each target per seed.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import yaml

from nextbest import logfile
from nextbest.models.uplift import LEARNERS
from nextbest.simulation.demo import DemoOptions, prepare
from nextbest.simulation.runner import SimulationOptions, SimulationRun, simulate
from nextbest.workspace import Workspace


def override(config_dir: Path, key: str, value: object) -> None:
    """Set one configuration value: ``KEY`` of training.yaml, or ``FILE.dotted.key`` of another file."""
    head, _, rest = key.partition(".")
    name, path = (head, rest.split(".")) if rest and (config_dir / f"{head}.yaml").exists() else ("training", key.split("."))
    file = config_dir / f"{name}.yaml"
    doc = yaml.safe_load(file.read_text())
    node = doc
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = value
    file.write_text(yaml.safe_dump(doc, sort_keys=False))


def run_seed(
    root: Path, seed: int, customers: int, history_days: int, days: int, tune: int,
    learner: str | None = None, members: int | None = None, settings: dict[str, object] | None = None,
    retrain_every: int = 0, period_days: int = 10, policies: tuple[str, ...] = ("champion", "rules", "random", "oracle"),
    jobs: int = 1, frozen: bool = False,
) -> dict[str, object]:
    ws = Workspace(root / f"seed-{seed}").ensure()
    ws.init_config()
    overrides = {k: v for k, v in {"uplift_learner": learner, "ensemble_members": members}.items() if v is not None}
    overrides |= settings or {}
    for key, value in overrides.items():
        override(ws.config_dir, key, value)
    ws.config()  # a bad override fails here, before any work, with the config's own message
    options = DemoOptions(customers=customers, history_days=history_days, seed=seed, tune_trials=tune)
    began = time.perf_counter()
    prepare(ws, options, lambda _m: None)
    prepared = time.perf_counter() - began
    training = ws.config().training
    run = simulate(ws, SimulationOptions(days=days, policies=policies, seed=seed,
                                         run_name="bench", retrain_every=retrain_every, period_days=period_days,
                                         jobs=jobs))
    r = {x.policy: x for x in run.results}
    profit = {p: round(x.incremental_profit, 1) for p, x in r.items()}
    expected = {p: round(x.expected_incremental_profit, 1) for p, x in r.items()}
    champion = r["champion"].incremental_profit
    still = frozen_champion(ws, run, days, seed, period_days) if frozen else {}
    return {
        "seed": seed, "customers": customers, "days": days, "learner": training.uplift_learner,
        "ensemble_members": training.ensemble_members, "settings": settings or {},
        "incremental_profit": profit, "expected_incremental_profit": expected,
        "champion_share_of_oracle": round(champion / r["oracle"].incremental_profit, 3),
        **{f"champion_vs_{b}": round(champion / r[b].incremental_profit - 1, 3) if r[b].incremental_profit > 0 else None
           for b in ("rules", "random") if b in r},
        "champion_share_of_oracle_by_period": [p["share_of_oracle"] for p in r["champion"].periods],
        "period_days": period_days, "retrain_every": retrain_every,
        "retraining": [{k: e[k] for k in ("day", "version", "promoted")} for e in run.retraining.get("champion", [])],
        "violations": {p: x.total_violations for p, x in r.items()},
        "seconds_prepare": round(prepared, 1), "seconds_simulate": round(run.seconds, 1),
        **still,
    }


def frozen_champion(ws: Workspace, run: SimulationRun, days: int, seed: int, period_days: int) -> dict[str, object]:
    """The same champion never retrained, on the same paired draws: what the retrained one is judged against.

    A rising share of the oracle is not learning by itself: the world's seasons move it
    for a champion that never changes too. Only the oracle of ``run`` is reused (the
    draws are paired), so this simulates the champion alone.
    """
    again = simulate(ws, SimulationOptions(days=days, policies=("champion",), seed=seed, run_name="bench-frozen",
                                           period_days=period_days))
    mine, oracle = again.result("champion"), run.result("oracle")
    by_period = [round(p["incremental_profit"] / o["incremental_profit"], 4) if o["incremental_profit"] > 0 else None
                 for p, o in zip(mine.periods, oracle.periods)]
    return {"frozen": {
        "incremental_profit": round(mine.incremental_profit, 1),
        "expected_incremental_profit": round(mine.expected_incremental_profit, 1),
        "share_of_oracle": round(mine.incremental_profit / oracle.incremental_profit, 3),
        "share_of_oracle_by_period": by_period, "seconds_simulate": round(again.seconds, 1),
    }}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--customers", type=int, default=DemoOptions.customers)
    parser.add_argument("--history-days", type=int, default=DemoOptions.history_days)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--tune", type=int, default=0, help="Optuna trials per champion (the demo uses 5).")
    parser.add_argument("--learner", choices=sorted(LEARNERS), help="Uplift learner (default: the configuration's).")
    parser.add_argument("--members", type=int, help="Bagged learners per champion (default: the configuration's).")
    parser.add_argument("--retrain-every", type=int, default=0, help="Retrain the champion every N days (0 = never).")
    parser.add_argument("--period-days", type=int, default=10, help="Days per period of the learning curve.")
    parser.add_argument("--baselines", nargs="*", choices=["rules", "random"], default=["rules", "random"],
                        help="Baseline policies simulated beside the champion and the oracle (none: the learning curve only).")
    parser.add_argument("--frozen", action="store_true",
                        help="With --retrain-every: also simulate the champion never retrained, on the same draws.")
    parser.add_argument("--jobs", type=int, default=1,
                        help="Policies simulated at once, each in its own process (same figures, less wall time).")
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=YAML",
                        help="Override a setting: a training.yaml key (--set 'effect_ignored_features=[offer_id]') "
                             "or FILE.dotted.key of another config file (--set policy.contact.max_contacts=1).")
    args = parser.parse_args()
    if args.frozen and args.retrain_every <= 0:
        parser.error("--frozen compares against a retrained champion: give --retrain-every N too")
    settings = {}
    for item in args.settings:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set {item!r}: use KEY=VALUE, e.g. --set 'effect_ignored_features=[offer_id]'")
        settings[key.strip()] = yaml.safe_load(value)
    rows = []
    with tempfile.TemporaryDirectory(prefix="nextbest-sim-bench-") as tmp:
        for seed in args.seeds:
            row = run_seed(Path(tmp), seed, args.customers, args.history_days, args.days, args.tune, args.learner, args.members,
                           settings, args.retrain_every, args.period_days, ("champion", *args.baselines, "oracle"), args.jobs,
                           args.frozen)
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(json.dumps({"summary": summary(rows)}))


def summary(rows: list[dict[str, object]]) -> dict[str, object]:
    """Shares of the oracle, ratios to the baselines and each target's verdict over ``rows`` (one per seed)."""
    shares = [float(r["champion_share_of_oracle"]) for r in rows]  # type: ignore[arg-type]

    def ratio(r: dict[str, object], baseline: str) -> float | None:
        """Champion ÷ baseline; ``None`` when the baseline earned nothing (no ratio, strict JSON)."""
        profit = r["incremental_profit"]
        return round(profit["champion"] / profit[baseline], 2) if profit[baseline] > 0 else None  # type: ignore[index]

    def clears(r: dict[str, object], baseline: str, target: float) -> bool:
        x = ratio(r, baseline)
        return x >= target if x is not None else r["incremental_profit"]["champion"] > 0  # type: ignore[index]

    out: dict[str, object] = {
        "seeds": [r["seed"] for r in rows],
        "champion_share_of_oracle": shares, "mean": round(sum(shares) / len(shares), 3),
        "violations": [r["violations"]["champion"] for r in rows],  # type: ignore[index]
    }
    if all("rules" in r["incremental_profit"] and "random" in r["incremental_profit"] for r in rows):  # type: ignore[operator]
        out["x_rules"], out["x_random"] = [ratio(r, "rules") for r in rows], [ratio(r, "random") for r in rows]
        out["every_seed_1.2x_rules_1.5x_random_no_violation"] = all(
            clears(r, "rules", 1.2) and clears(r, "random", 1.5) and r["violations"]["champion"] == 0 for r in rows  # type: ignore[index]
        )
    for r in rows:
        days, period = int(r["days"]), int(r["period_days"])  # type: ignore[call-overload]
        if days >= 40 and 20 % period == 0:
            # The learning curve: the first and last 20 days, from the periods' shares weighted alike.
            curve, k = list(r["champion_share_of_oracle_by_period"]), 20 // period  # type: ignore[call-overload]
            first, last = sum(curve[:k]) / k, sum(curve[-k:]) / k
            entry = {"seed": r["seed"], "first_20_days": round(first, 3), "last_20_days": round(last, 3),
                     "learns": last >= first, "overall": r["champion_share_of_oracle"]}
            frozen = r.get("frozen")
            if isinstance(frozen, dict) and None not in frozen["share_of_oracle_by_period"][-k:]:
                # The same last 20 days for the champion never retrained: what retraining itself added.
                still = sum(frozen["share_of_oracle_by_period"][-k:]) / k
                entry |= {"frozen_last_20_days": round(still, 3), "retraining_gain_last_20_days": round(last - still, 3),
                          "frozen_overall": frozen["share_of_oracle"]}
            out.setdefault("learning", []).append(entry)  # type: ignore[union-attr]
    return out


if __name__ == "__main__":
    logfile.route_script_output(__file__)
    main()
