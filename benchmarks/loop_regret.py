"""Where in the closed loop does a policy lose profit against the oracle?

``benchmarks/simulation.py`` says *how much* the champion earns over 30 days;
``benchmarks/decision_quality.py`` says where it loses on one fresh day. Neither
shows what the loop itself does: customers that triggers select day after day,
contacts that pile up, a world that the policy's own choices change. This runs the
loop once for the policy and, every day before the world answers, scores the same
audience's candidates with the world's truth, with the same contact history, on
the policy's *own* world. Each decision is booked twice, both valued with the
truth (true uplift x expected revenue of a conversion - contact cost):

``oracle``   the best candidate by true expected value, or nothing when none is positive
``policy``   what the policy chose (0 when it contacted nobody)

and the shares are broken down by 10-day period, by whether a trigger selected the
customer, and by the customer's contacts in the last 7 days (as the model sees them),
next to what the historical log the model learnt from holds at that pressure.

Usage::

    .venv/bin/python benchmarks/loop_regret.py --demo-seed 0            # builds the demo world in a temp folder
    .venv/bin/python benchmarks/loop_regret.py --workspace PATH          # e.g. the workspace `make demo` leaves
    .venv/bin/python benchmarks/loop_regret.py --demo-seed 1 --out book.parquet   # and every booked decision
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nextbest import logfile
from nextbest.simulation.demo import DemoOptions, given_or_demo
from nextbest.simulation.regret import RegretBook, historical_pressure, summarise
from nextbest.simulation.runner import SimulationOptions, simulate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, help="Workspace with a generated world and a champion.")
    parser.add_argument("--demo-seed", type=int, default=0, help="Seed of the demo world built when --workspace is absent.")
    parser.add_argument("--policy", default="champion", help="Policy to attribute (default champion).")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--out", type=Path, help="Also write every booked decision to this Parquet file.")
    args = parser.parse_args()
    with given_or_demo(args.workspace, DemoOptions(seed=args.demo_seed, tune_trials=0)) as ws:
        book = RegretBook()
        run = simulate(ws, SimulationOptions(days=args.days, policies=(args.policy,), seed=args.demo_seed), observer=book)
        frame = book.frame()
        if args.out is not None:
            frame.to_parquet(args.out)
        out = summarise(frame, historical_pressure(ws, ws.config()))
        out["incremental_profit"] = round(run.result(args.policy).incremental_profit, 1)
        print(json.dumps(out, indent=2))


if __name__ == "__main__":
    logfile.route_script_output(__file__)
    main()
