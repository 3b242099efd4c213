"""A trained workspace whose customers carry declared attributes of every type.

Built once per session with the real CLI: generate a small world, declare five
attributes in ``features.yaml`` (a category, a number, a boolean and a date that
models may use, plus two personal ones), upsert them into ``customers`` from a
CSV file, build features and train. ``loyalty_tier`` and ``crm_score`` are made
informative (they follow each customer's conversions in the generated history),
so the response model has a reason to split on them. Shared by the training and
serving tests of attributes.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np

NEXTBEST = [str(Path(sys.executable).with_name("nextbest"))]
CUSTOMERS = 1200
DAYS = 75
SEED = 11

ATTRIBUTES_YAML = """
attributes:
  - {name: loyalty_tier, type: category, description: "Tier of the loyalty programme"}
  - {name: crm_score, type: number}
  - {name: is_vip, type: boolean}
  - {name: contract_start, type: date}
  - {name: nickname, type: category, personal: true}
  - {name: partner_birth_date, type: date, personal: true}
"""
#: Offer whose eligibility reads an attribute, and the rule.
GOLD_OFFER = "style_inspiration"
GOLD_RULE = "loyalty_tier == 'gold'"
#: A segment over attributes of three types.
SEGMENT = "gold_vips"
SEGMENT_RULE = "loyalty_tier == 'gold' and is_vip and contract_start >= 30"
#: Every personal value starts with this, so artifacts can be searched for it.
NICK_PREFIX = "nick-zq"
PARTNER_BIRTH = dt.date(1911, 11, 11)


def run_cli(ws: Path, *args: str, timeout: float = 900, ok: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the real CLI against ``ws``; fails on a non-zero exit unless ``ok`` is False."""
    env = {**os.environ, "NEXTBEST_WORKSPACE": str(ws), "MLFLOW_TRACKING_URI": f"sqlite:///{ws / 'mlflow.db'}"}
    done = subprocess.run([*NEXTBEST, "--workspace", str(ws), *args], env=env, capture_output=True, text=True,
                          timeout=timeout)
    if ok and done.returncode != 0:
        raise AssertionError(f"nextbest {' '.join(args)} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return done


@dataclass(frozen=True)
class AttributeWorld:
    """The built workspace and the attribute values it was given."""

    root: Path
    values: dict[int, dict[str, str]]  # customer id -> column -> the text written to the CSV


def configure(root: Path) -> None:
    """Declare the attributes, an eligibility rule and a segment over them."""
    config = root / "config"
    with open(config / "features.yaml", "a") as f:
        f.write(ATTRIBUTES_YAML)
    offers = (config / "offers.yaml").read_text()
    line = next(x for x in offers.splitlines() if f"id: {GOLD_OFFER}," in x)
    (config / "offers.yaml").write_text(offers.replace(line, line.replace("channels:", f'eligibility: "{GOLD_RULE}", channels:')))
    with open(config / "policy.yaml", "a") as f:
        f.write(f'  - {{name: {SEGMENT}, rule: "{SEGMENT_RULE}", description: "Gold VIPs of a year and more"}}\n')
    # A shorter fit: the tests need a model that uses the attributes, not the best one.
    training = (config / "training.yaml").read_text()
    (config / "training.yaml").write_text(training.replace("n_estimators: 2000", "n_estimators: 400"))


def attribute_rows(warehouse: Path, seed: int = SEED) -> dict[int, dict[str, str]]:
    """Attribute values per customer; the tier and score follow the customer's conversions."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        rows = con.execute(
            "SELECT c.customer_id, count(r.decision_id) AS conversions FROM customers c "
            "LEFT JOIN decisions d USING (customer_id) "
            "LEFT JOIN responses r ON r.decision_id = d.decision_id AND r.outcome = 'conversion' "
            "GROUP BY 1 ORDER BY 1"
        ).fetchall()
    finally:
        con.close()
    rng = np.random.default_rng(seed)
    out: dict[int, dict[str, str]] = {}
    for cid, conversions in rows:
        tier = "gold" if conversions else str(rng.choice(["silver", "bronze", ""]))
        start = dt.date(2023, 1, 1) + dt.timedelta(days=int(rng.integers(0, 400)))
        out[int(cid)] = {
            "customer_id": str(cid),
            "loyalty_tier": tier,
            "crm_score": f"{300 + 150 * min(conversions, 3) + rng.normal(0, 20):.1f}",
            "is_vip": str(rng.choice(["true", "false", ""])),
            "contract_start": start.isoformat() if rng.random() > 0.1 else "",
            "nickname": f"{NICK_PREFIX}{cid}",
            "partner_birth_date": PARTNER_BIRTH.isoformat(),
        }
    return out


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def build(root: Path) -> AttributeWorld:
    """Generate, declare, import attributes, build features and train, all through the CLI."""
    run_cli(root, "init")
    configure(root)
    run_cli(root, "data", "generate", "--customers", str(CUSTOMERS), "--days", str(DAYS), "--seed", str(SEED))
    values = attribute_rows(root / "warehouse.duckdb")
    run_cli(root, "data", "import", "--table", "customers", "--upsert",
            str(write_csv(root.parent / "attributes.csv", list(values.values()))))
    run_cli(root, "features", "build")
    run_cli(root, "train")
    return AttributeWorld(root, values)
