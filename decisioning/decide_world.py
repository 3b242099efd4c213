"""A world for ``nextbest decide``: a real warehouse snapshot, past contacts, a registered champion.

What the decide tests (``tests/decisioning/test_batch.py``, ``tests/spark/test_decide.py``)
and ``benchmarks/spark.py`` decide on, at any number of customers. Features are random
but complete (:func:`~nextbest.decisioning.synthetic.random_features`), the champion is a
real fitted LightGBM S-learner (:func:`~nextbest.decisioning.synthetic.fit_scorer`)
registered in the workspace's MLflow store, one channel (``web``) has a daily capacity
the batch exceeds, and yesterday's contacts in the warehouse make the contact policy bite.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import yaml

from nextbest.config import load_config
from nextbest.decisioning.synthetic import fit_scorer, random_features
from nextbest.features.registry import feature_defs, offer_history_features
from nextbest.features.snapshots import write_snapshot
from nextbest.models.pyfunc import SCORER_ARTIFACT, ResponseModelPyfunc
from nextbest.models.registry import CHAMPION, MODEL_NAME, set_alias
from nextbest.training.tracking import use_workspace
from nextbest.warehouse.db import connect
from nextbest.workspace import Workspace

AS_OF = pd.Timestamp("2024-06-03")
DAY = dt.date(2024, 6, 3)
CUSTOMERS = 600
#: The capped channel and its daily capacity: fewer than the customers who would choose it.
CAPPED_CHANNEL, CAPACITY = "web", 60


def build_world(root: Path, customers: int = CUSTOMERS) -> Workspace:
    """A workspace at ``root`` ready for ``nextbest decide --date 2024-06-03``.

    Parameters
    ----------
    root
        The workspace folder (created).
    customers
        Customers in the snapshot (ids ``1..customers``); half have an offer history.
    """
    ws = Workspace.resolve(root)
    ws.init_config()
    channels_file = ws.config_dir / "channels.yaml"
    channels = yaml.safe_load(channels_file.read_text())
    for ch in channels["channels"]:
        if ch["id"] == CAPPED_CHANNEL:
            ch["daily_capacity"] = CAPACITY
    channels_file.write_text(yaml.safe_dump(channels, sort_keys=False))
    config = ws.config()

    features = random_features(config, customers, seed=4)
    rng = np.random.default_rng(5)
    hist_cols = [d.name for d in offer_history_features(feature_defs(config))]
    offers = [o.id for o in config.offers.offers]
    who = rng.choice(features["customer_id"].to_numpy(), size=customers // 2, replace=False)
    pairs = pd.DataFrame([(int(c), o) for c in who for o in rng.choice(offers, size=2, replace=False)],
                         columns=["customer_id", "offer_id"])
    for c in hist_cols:
        pairs[c] = rng.integers(0, 4, len(pairs)).astype(float)
    if "days_since_shown" in pairs:
        pairs["days_since_shown"] = rng.uniform(1, 80, len(pairs))
    doc = {"feature_set_version": "test", "as_of": AS_OF.isoformat(), "built_at": AS_OF.isoformat(),
           "row_count": customers, "offer_history_rows": len(pairs), "definition_hash": "x",
           "fitted_as_of": AS_OF.isoformat(), "clv_method": "test", "null_shares": {}}
    # Yesterday's contacts: the contact cap and cool-downs remove some of today's pairs.
    past = features["customer_id"].to_numpy()[: customers // 5]
    yesterday = pd.DataFrame({
        "decision_id": [f"past-{c}" for c in past], "customer_id": past, "ts": pd.Timestamp(DAY) - pd.Timedelta(hours=20),
        "offer_id": rng.choice(offers, len(past)), "channel": "email", "arm": "champion", "experiment": "default",
        "propensity": 1.0, "model_version": "nextbest-response/0", "score": 1.0, "contacted": True,
    })
    con = connect(ws.warehouse_path)
    try:
        con.register("f", pd.DataFrame({"customer_id": features["customer_id"], "first_name": "Anna", "gender": "f"}))
        con.execute("INSERT INTO customers (customer_id, first_name, gender) SELECT * FROM f")
        con.unregister("f")
        con.register("y", yesterday)
        con.execute("INSERT INTO decisions BY NAME SELECT * FROM y")
        write_snapshot(con, config, features, pairs, doc)
    finally:
        con.close()
    register_champion(ws)
    return ws


def register_champion(ws: Workspace) -> str:
    """Register the fitted test scorer as ``nextbest-response@champion`` in ``ws``'s tracking store."""
    use_workspace(ws)
    mlflow.set_experiment("decide-test")
    with mlflow.start_run(), tempfile.TemporaryDirectory() as tmp:
        folder = fit_scorer(load_config()).save(Path(tmp) / SCORER_ARTIFACT)
        info = mlflow.pyfunc.log_model(name="model", python_model=ResponseModelPyfunc(),
                                       artifacts={SCORER_ARTIFACT: str(folder)}, pip_requirements=["nextbest"])
    version = mlflow.register_model(info.model_uri, MODEL_NAME)
    set_alias(ws.tracking_uri, CHAMPION, str(version.version))
    return str(version.version)


def write_lake(ws: Workspace, lake: Path) -> Path:
    """``ws`` exported as a lake, as ``nextbest data export --output LAKE`` writes it (live store synced first)."""
    from nextbest.live.cli import sync_live
    from nextbest.spark.lake import export_lake

    sync_live(ws)
    con = connect(ws.warehouse_path, read_only=True)
    try:
        export_lake(con, lake)
    finally:
        con.close()
    return lake
