"""CLV validation: nextbest's ``clv_12m`` against BG/NBD + Gamma-Gamma on the same calibration period.

For each dataset the transactions go into a fresh workspace through the real
CLI (``nextbest data generate`` or ``nextbest data import``), ``nextbest features
build --as-of <calibration end>`` fits the CLV model on data before that date and
writes ``clv_12m``; BG/NBD (``lifetimes.BetaGeoFitter``) and Gamma-Gamma
(``lifetimes.GammaGammaFitter``) are fitted on the same calibration transactions,
and predict expected purchases in the holdout times the expected value per
purchase. Customers with at least one order before the calibration end are scored
against their value in the holdout (from the calibration end to the end of the
data), on the basis the build used (margin, or amount when there is none):

* Spearman rank correlation of the prediction with the holdout value;
* top-decile capture: share of all holdout value bought by the 10 % of customers
  ranked highest by the prediction.

The run rate (last 365 days' value, the CLV model's fallback) is printed as a
reference, and a paired bootstrap over customers (400 draws) gives a 95 % interval
of the difference between ``clv_12m`` and BG/NBD on each metric.

Datasets
--------
``generated``      the synthetic world, ``nextbest data generate --customers 20000 --days 540 --seed 7``
                   (transactions carry margins: basis ``margin``), calibration end 2024-12-26
                   (the last 180 days are the holdout).
``generated-nomargin``  the same world with every margin removed (basis ``amount``).
``online-retail``  UCI "Online Retail" (Chen, Sain & Guo 2012; UCI ML Repository, DOI 10.24432/C5BW33),
                   licence CC BY 4.0: every order line of a UK online gift retailer, 2010-12-01 to
                   2011-12-09; 4,338 customers with an id, only dates and amounts (basis ``amount``).
                   Calibration end 2011-06-09 (holdout: the last 26 weeks). Pass the file with
                   ``--online-retail PATH``: the original ``Online Retail.xlsx`` / a CSV export of it
                   (``InvoiceNo, StockCode, Description, Quantity, InvoiceDate, UnitPrice, CustomerID,
                   Country``), or the Parquet copy used for the figures in docs/own-data.md, from the
                   public GitHub repository BenJMcCarty/UCI_Dataset_Online_Retail, file
                   ``data/online_retail.parquet`` (commit 15986919cc97e40bc4bcfd61a63eb837f31d45c5,
                   541,909 rows, no ``InvoiceNo`` column), sha256
                   ``d4bf11013582a8f3a068b6762a7e12d9899d456d615d5340ce998a61bc46c12a``.
                   The file is not in this repository (it is third-party data); without the option
                   the dataset is skipped.

Orders are the order lines of one customer at one invoice time (one invoice);
lines with a non-positive quantity or price (cancellations, adjustments) and lines
without a customer id are dropped, as is customary for this dataset.

    python benchmarks/clv.py --online-retail /path/to/online_retail.parquet
    python benchmarks/clv.py --datasets generated      # generated world only

Prints a table (dataset, model, customers, Spearman, top-decile capture) and one
JSON line per dataset. BG/NBD comes from ``lifetimes`` (dev dependency group):
it is unmaintained since 2020, but its fitters still run on our NumPy 2 /
pandas 3 pins; its ``summary_data_from_transaction_data`` does not (recency can
exceed T under pandas 3), so the frequency/recency/T summary is computed here in
SQL with the textbook definitions (one purchase per day; frequency = repeat
purchase days; recency and T in days since the first purchase).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from nextbest import logfile

ONLINE_RETAIL_SHA256 = "d4bf11013582a8f3a068b6762a7e12d9899d456d615d5340ce998a61bc46c12a"

NEXTBEST = str(Path(sys.executable).with_name("nextbest"))


@dataclass(frozen=True)
class Split:
    """Calibration end and end of the data (holdout = [calibration_end, end))."""

    calibration_end: pd.Timestamp
    end: pd.Timestamp

    @property
    def holdout_days(self) -> float:
        return (self.end - self.calibration_end) / pd.Timedelta(days=1)


def cli(workspace: Path, *args: str) -> str:
    """Run ``nextbest --workspace W ...``; its output (raises with it on failure)."""
    done = subprocess.run([NEXTBEST, "--workspace", str(workspace), *args], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"nextbest {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


# --------------------------------------------------------------------------- datasets
def generated(workspace: Path, customers: int, drop_margins: bool = False) -> Split:
    """The synthetic world: 540 days from 2024-01-01; the last 180 are the holdout."""
    cli(workspace, "data", "generate", "--customers", str(customers), "--days", "540", "--seed", "7")
    if drop_margins:
        con = duckdb.connect(str(workspace / "warehouse.duckdb"))
        con.execute("UPDATE transactions SET margin = NULL")
        con.close()
    con = duckdb.connect(str(workspace / "warehouse.duckdb"), read_only=True)
    end = pd.Timestamp(con.execute("SELECT max(ts) FROM transactions").fetchone()[0]).normalize() + pd.Timedelta(days=1)
    con.close()
    return Split(end - pd.Timedelta(days=180), end)


def online_retail_orders(path: Path) -> pd.DataFrame:
    """Orders (customer_id, ts, order_id, amount) from the UCI Online Retail file (xlsx, csv or parquet)."""
    if path.suffix == ".parquet":
        lines = pd.read_parquet(path)
    elif path.suffix in (".xlsx", ".xls"):
        lines = pd.read_excel(path)
    else:
        lines = pd.read_csv(path, encoding="latin-1")
    lines = lines.rename(columns={"Customer ID": "CustomerID", "Price": "UnitPrice", "Invoice": "InvoiceNo"})
    lines = lines[lines["CustomerID"].notna() & (lines["Quantity"] > 0) & (lines["UnitPrice"] > 0)]
    lines = lines.assign(customer_id=lines["CustomerID"].astype("int64"), ts=pd.to_datetime(lines["InvoiceDate"]),
                         amount=lines["Quantity"] * lines["UnitPrice"])
    # One invoice = one order; the Parquet copy has no invoice number, and an invoice has one time.
    key = ["customer_id", "ts"] + (["InvoiceNo"] if "InvoiceNo" in lines else [])
    orders = lines.groupby(key, as_index=False)["amount"].sum()
    orders["order_id"] = (orders["InvoiceNo"].astype(str) if "InvoiceNo" in orders
                          else orders["customer_id"].astype(str) + "@" + orders["ts"].dt.strftime("%Y%m%d%H%M%S"))
    orders["amount"] = orders["amount"].round(2)
    return orders[["customer_id", "ts", "order_id", "amount"]]


def online_retail(workspace: Path, path: Path) -> Split:
    """Import the Online Retail orders through ``nextbest data import`` (no margin column)."""
    orders = online_retail_orders(path)
    cli(workspace, "init")
    folder = workspace / "import"
    folder.mkdir()
    pd.DataFrame({"customer_id": np.sort(orders["customer_id"].unique())}).to_csv(folder / "customers.csv", index=False)
    orders.to_csv(folder / "transactions.csv", index=False)
    cli(workspace, "data", "import", str(folder / "customers.csv"), "--table", "customers")
    cli(workspace, "data", "import", str(folder / "transactions.csv"), "--table", "transactions")
    return Split(pd.Timestamp("2011-06-09"), pd.Timestamp("2011-12-10"))


# --------------------------------------------------------------------------- models
def calibration_summary(con: duckdb.DuckDBPyConnection, split: Split, value_sql: str) -> pd.DataFrame:
    """Per customer with an order before the calibration end: BG/NBD's frequency, recency, T (days),
    the mean value of the repeat purchase days, the run rate and the holdout value."""
    return con.execute(f"""
        WITH lines AS (SELECT customer_id, ts, {value_sql} AS value FROM transactions),
        days AS (
            SELECT customer_id, CAST(ts AS DATE) AS day, sum(value) AS value FROM lines
            WHERE ts < $cal GROUP BY 1, 2),
        ranked AS (SELECT *, row_number() OVER (PARTITION BY customer_id ORDER BY day) AS n FROM days),
        summary AS (
            SELECT customer_id, count(*) - 1 AS frequency,
                   date_diff('day', min(day), max(day)) AS recency,
                   date_diff('day', min(day), CAST($cal AS DATE)) AS T,
                   coalesce(avg(value) FILTER (WHERE n > 1), 0.0) AS monetary_value,
                   sum(value) FILTER (WHERE day >= CAST($cal AS DATE) - INTERVAL 365 DAY) AS run_rate
            FROM ranked GROUP BY customer_id),
        holdout AS (
            SELECT customer_id, sum(value) AS holdout FROM lines WHERE ts >= $cal AND ts < $end GROUP BY 1)
        SELECT s.*, coalesce(h.holdout, 0.0) AS holdout FROM summary s LEFT JOIN holdout h USING (customer_id)
        ORDER BY customer_id""", {"cal": split.calibration_end.to_pydatetime(), "end": split.end.to_pydatetime()}).df()


def _fit(fitter: type, *data: object) -> object:
    """Fit a ``lifetimes`` model, adding a penalty only when the unpenalised fit does not converge
    (scipy reports a precision loss at the optimum of a near-degenerate BG/NBD: no drop-out seen)."""
    from lifetimes.utils import ConvergenceError

    for penalizer in (0.0, 0.001, 0.01, 0.1):
        try:
            return fitter(penalizer_coef=penalizer).fit(*data)
        except ConvergenceError:
            continue
    raise RuntimeError(f"{fitter.__name__} did not converge even with a penalty of 0.1")


def bgnbd_gamma_gamma(summary: pd.DataFrame, horizon_days: float) -> np.ndarray:
    """Expected value in the next ``horizon_days``: BG/NBD purchases times Gamma-Gamma value per purchase.

    Time is in weeks, as in Fader, Hardie & Lee (2005); in days the optimiser does not converge.
    """
    from lifetimes import BetaGeoFitter, GammaGammaFitter

    f = summary["frequency"].to_numpy(float)
    r, t = (summary[c].to_numpy(float) / 7.0 for c in ("recency", "T"))
    bgf = _fit(BetaGeoFitter, f, r, t)
    purchases = bgf.conditional_expected_number_of_purchases_up_to_time(horizon_days / 7.0, f, r, t)
    repeat = summary[(summary["frequency"] > 0) & (summary["monetary_value"] > 0)]
    ggf = _fit(GammaGammaFitter, repeat["frequency"], repeat["monetary_value"])
    spend = ggf.conditional_expected_average_profit(summary["frequency"], summary["monetary_value"])
    return np.asarray(purchases, dtype=float) * np.asarray(spend, dtype=float)


def nextbest_clv(workspace: Path, split: Split) -> tuple[pd.Series, dict[str, object]]:
    """``clv_12m`` per customer from ``nextbest features build --as-of <calibration end>``."""
    doc = json.loads(cli(workspace, "features", "build", "--as-of", str(split.calibration_end.date()), "--refit",
                        "--json"))
    con = duckdb.connect(str(workspace / "warehouse.duckdb"), read_only=True)
    clv = con.execute("SELECT customer_id, clv_12m FROM features.customer_snapshot WHERE as_of = $t",
                      {"t": split.calibration_end.to_pydatetime()}).df().set_index("customer_id")["clv_12m"]
    con.close()
    return clv, {"value_basis": doc["value_basis"]["basis"], "clv_method": doc["snapshots"][0]["clv_method"]}


# --------------------------------------------------------------------------- metrics
def top_decile_capture(prediction: np.ndarray, actual: np.ndarray) -> float:
    """Share of the total holdout value bought by the top 10 % by prediction (ties broken by order)."""
    k = max(1, int(round(0.1 * len(actual))))
    top = np.argsort(-prediction, kind="stable")[:k]
    return float(actual[top].sum() / actual.sum())


def paired_bootstrap(ours: np.ndarray, theirs: np.ndarray, actual: np.ndarray, draws: int = 400,
                     seed: int = 0) -> dict[str, list[float]]:
    """95 % percentile intervals of (ours - theirs) for both metrics, resampling customers."""
    rng = np.random.default_rng(seed)
    diffs: dict[str, list[float]] = {"spearman": [], "top_decile_capture": []}
    for _ in range(draws):
        i = rng.integers(0, len(actual), len(actual))
        a = actual[i]
        diffs["spearman"].append(spearmanr(ours[i], a).statistic - spearmanr(theirs[i], a).statistic)
        diffs["top_decile_capture"].append(top_decile_capture(ours[i], a) - top_decile_capture(theirs[i], a))
    return {k: [round(float(np.percentile(v, 2.5)), 4), round(float(np.percentile(v, 97.5)), 4)]
            for k, v in diffs.items()}


def evaluate(name: str, workspace: Path, split: Split) -> dict[str, object]:
    started = time.perf_counter()
    clv, build = nextbest_clv(workspace, split)
    build_s = time.perf_counter() - started
    con = duckdb.connect(str(workspace / "warehouse.duckdb"), read_only=True)
    from nextbest.warehouse.value_basis import value_basis

    from nextbest.config import load_config

    basis = value_basis(con, load_config(workspace / "config"))
    summary = calibration_summary(con, split, basis.value_sql)
    con.close()
    actual = summary["holdout"].to_numpy(float)
    predictions = {
        "nextbest clv_12m": summary["customer_id"].map(clv).fillna(0.0).to_numpy(float),
        "BG/NBD + Gamma-Gamma": bgnbd_gamma_gamma(summary, split.holdout_days),
        "run rate (365 d)": summary["run_rate"].fillna(0.0).to_numpy(float),
    }
    rows = {model: {"spearman": round(float(spearmanr(p, actual).statistic), 4),
                    "top_decile_capture": round(top_decile_capture(p, actual), 4)}
            for model, p in predictions.items()}
    return {"dataset": name, "basis": basis.basis, "clv_method": build["clv_method"],
            "calibration_end": str(split.calibration_end.date()), "end": str(split.end.date()),
            "customers": len(summary), "holdout_buyers": int((actual > 0).sum()),
            "build_s": round(build_s, 1), "models": rows,
            "clv_minus_bgnbd_95ci": paired_bootstrap(predictions["nextbest clv_12m"],
                                                     predictions["BG/NBD + Gamma-Gamma"], actual)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["generated", "generated-nomargin", "online-retail"],
                        choices=["generated", "generated-nomargin", "online-retail"])
    parser.add_argument("--customers", type=int, default=20_000, help="Customers of the generated world.")
    parser.add_argument("--online-retail", type=Path, default=None, help="The UCI Online Retail file.")
    parser.add_argument("--dir", type=Path, default=None, help="Where to put the workspaces (default: a temp dir).")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for name in args.datasets:
            ws = Path(tmp) / name
            if name == "online-retail":
                if args.online_retail is None:
                    print("online-retail: skipped (pass --online-retail PATH)", file=sys.stderr)
                    continue
                digest = hashlib.sha256(args.online_retail.read_bytes()).hexdigest()
                if digest != ONLINE_RETAIL_SHA256:
                    print(f"online-retail: {args.online_retail} has sha256 {digest}, not the file of the "
                          "documented figures; results may differ", file=sys.stderr)
                split = online_retail(ws, args.online_retail)
            else:
                split = generated(ws, args.customers, drop_margins=name == "generated-nomargin")
            result = evaluate(name, ws, split)
            results.append(result)
            print(json.dumps(result), flush=True)
    print("\n| dataset | basis | customers | model | Spearman | top-decile capture |")
    print("| --- | --- | ---: | --- | ---: | ---: |")
    for r in results:
        ci = r["clv_minus_bgnbd_95ci"]
        for model, m in r["models"].items():
            print(f"| {r['dataset']} | {r['basis']} | {r['customers']:,} | {model} | {m['spearman']:.3f} | "
                  f"{m['top_decile_capture']:.3f} |")
        print(f"| {r['dataset']} | | | clv_12m - BG/NBD, 95 % CI | {ci['spearman'][0]:+.3f} to "
              f"{ci['spearman'][1]:+.3f} | {ci['top_decile_capture'][0]:+.3f} to {ci['top_decile_capture'][1]:+.3f} |")


if __name__ == "__main__":
    logfile.route_script_output(__file__)
    main()
