"""Feature-pipeline benchmark: build a snapshot of N customers with ~50 interactions each.

Raw tables are generated inside DuckDB with ``range()``/``random()`` (seconds, no
dependency on the world generator); the timed part is exactly what
``nextbest features build`` does: fit the feature models, compute the customer
features and offer history, write the snapshot.

    python benchmarks/features.py                      # 100k and 1M customers, 180 days
    python benchmarks/features.py --customers 100000   # one size

Prints one JSON line per size: wall time per phase, peak RSS, interactions/s.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import duckdb
import pandas as pd
from nextbest import logfile
from nextbest.features.pipeline import build_features, build_offer_history, fit_and_build
from nextbest.features.snapshots import manifest, write_snapshot
from nextbest.features.store import FeatureStore
from nextbest.warehouse.db import connect

from nextbest.config import load_config

END = pd.Timestamp("2024-07-01")
TYPES = ["web.view.category.shoes", "web.view.category.home", "web.view.category.garden", "web.search",
         "web.cart_add", "app.open", "email.open", "email.click", "store.visit", "service.call", "social.review"]
CATEGORIES = ["home", "shoes", "garden", "electronics", "fashion_women", "fashion_men", "kids", "beauty", "toys"]
OFFERS = ["welcome_tips", "sports_gear", "beauty_box", "book_club", "fashion_sale", "home_makeover"]


def generate(con: duckdb.DuckDBPyConnection, n: int, days: int, per_customer: int) -> dict[str, int]:
    """Fill the raw tables; returns row counts."""
    start = f"TIMESTAMP '{END}' - INTERVAL {days} DAY"
    ts = f"{start} + to_seconds(CAST(floor(random() * {days * 86400}) AS BIGINT))"

    def pick(values: list[str]) -> str:
        return f"{values!r}[1 + CAST(floor(random() * {len(values)}) AS INTEGER)]"

    con.execute("SELECT setseed(0.5)")
    con.execute(f"""INSERT INTO customers (customer_id, birth_date, gender, region, urbanity, distance_to_store_km,
            member_since, consent_email, consent_sms, consent_push, consent_direct_mail, consent_outbound_call,
            valid_email, valid_phone, valid_push, valid_address, preferred_channel)
        SELECT i, DATE '1945-01-01' + CAST(floor(random() * 20000) AS INTEGER), {pick(['f', 'm', 'x'])},
            'r' || (i % 12), {pick(['urban', 'suburban', 'rural'])}, random() * 80,
            DATE '2020-01-01' + CAST(floor(random() * 1400) AS INTEGER),
            random() < 0.7, random() < 0.4, random() < 0.5, random() < 0.6, random() < 0.2,
            random() < 0.9, random() < 0.9, random() < 0.5, random() < 0.95, NULL
        FROM range(1, {n} + 1) t(i)""")
    # Skewed activity: a customer's share of events grows with random()^2 of their id's draw.
    con.execute(f"""INSERT INTO interactions (customer_id, ts, type)
        SELECT 1 + CAST(floor(pow(random(), 1.3) * {n}) AS BIGINT), {ts}, {pick(TYPES)}
        FROM range({n * per_customer})""")
    con.execute(f"""INSERT INTO transactions (customer_id, ts, order_id, category, amount, margin)
        SELECT 1 + CAST(floor(pow(random(), 1.3) * {n}) AS BIGINT), {ts}, 'o' || i, {pick(CATEGORIES)},
            round(5 + random() * 150, 2), round(random() * 40, 2)
        FROM range({n * 4}) t(i)""")
    con.execute(f"""INSERT INTO life_events (customer_id, ts, event_type, event_date)
        SELECT 1 + CAST(floor(random() * {n}) AS BIGINT), {ts}, {pick(['moved', 'contract_end', 'newsletter_signup'])},
            NULL FROM range({n // 3})""")
    con.execute(f"""INSERT INTO decisions (decision_id, customer_id, ts, offer_id, channel, arm, experiment, contacted)
        SELECT 'd' || i, 1 + CAST(floor(random() * {n}) AS BIGINT), {ts}, {pick(OFFERS)},
            {pick(['email', 'sms', 'push', 'web'])}, 'random', 'historical', random() < 0.9
        FROM range({n * 2}) t(i)""")
    con.execute(f"""INSERT INTO responses (decision_id, ts, outcome)
        SELECT decision_id, ts + INTERVAL 1 DAY, {pick(['open', 'click', 'conversion', 'complaint'])}
        FROM decisions WHERE random() < 0.3""")
    return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("customers", "interactions", "transactions", "life_events", "decisions", "responses")}


def run(n: int, days: int, per_customer: int, folder: Path) -> dict[str, object]:
    config = load_config(None)
    con = connect(folder / f"bench_{n}.duckdb")
    t0 = time.perf_counter()
    counts = generate(con, n, days, per_customer)
    gen = time.perf_counter() - t0
    con.execute("CHECKPOINT")
    phases: dict[str, float] = {}
    t = time.perf_counter()
    feats, models = fit_and_build(con, END, config)  # what `features build` does for its first snapshot
    phases["fit_and_build"] = time.perf_counter() - t
    t = time.perf_counter()
    hist = build_offer_history(con, END, config)
    phases["offer_history"] = time.perf_counter() - t
    t = time.perf_counter()
    write_snapshot(con, config, feats, hist, manifest(feats, hist, END, models))
    phases["write_snapshot"] = time.perf_counter() - t
    t = time.perf_counter()
    build_features(con, END, config, models=models)  # a later snapshot: models reused
    phases["build_with_saved_models"] = time.perf_counter() - t
    con.close()
    store = FeatureStore(feats, hist)
    ids = feats["customer_id"].to_numpy()
    store.get(ids[:1])
    t = time.perf_counter()
    for i in ids[:1000]:
        store.get([int(i)])
    single_ms = (time.perf_counter() - t)  # 1000 look-ups: seconds = ms per look-up
    t = time.perf_counter()
    store.get(ids[::max(1, len(ids) // 5000)][:5000])
    batch_ms = (time.perf_counter() - t) * 1000
    total = phases["fit_and_build"] + phases["offer_history"] + phases["write_snapshot"]
    return {
        "customers": n, "days": days, "rows": counts, "generate_s": round(gen, 1),
        "phases_s": {k: round(v, 2) for k, v in phases.items()},
        "features_build_s": round(total, 1),  # = `nextbest features build` with a fit
        "interactions_per_s": round(counts["interactions"] / phases["build_with_saved_models"]),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 2),
        "store_single_lookup_ms": round(single_ms, 3),
        "store_5000_ids_ms": round(batch_ms, 1),
        "clv_method": models.clv.method_,
        "clv_basis": models.clv.basis,
        "feature_columns": feats.shape[1] - 1,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--interactions-per-customer", type=int, default=50)
    parser.add_argument("--dir", type=Path, default=None, help="Where to put the DuckDB files (default: a temp dir).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for n in args.customers:
            print(json.dumps(run(n, args.days, args.interactions_per_customer, Path(tmp))), flush=True)


if __name__ == "__main__":
    logfile.route_script_output(__file__)
    main()
