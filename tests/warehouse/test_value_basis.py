"""Customer value without margins: the basis is decided from the data, used by CLV and reported.

End to end through the CLI: CSV files without a margin column are imported with
``nextbest data import``, then ``features build`` and ``data quality`` must both
name the basis, and ``clv_12m`` must rank customers (never a silent constant).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from nextbest.features.snapshots import read_snapshot
from nextbest.warehouse.db import connect
from nextbest.warehouse.value_basis import value_basis
from typer.testing import CliRunner

from nextbest.cli import app
from nextbest.config import load_config
from nextbest.errors import ConfigError
from nextbest.workspace import Workspace

AS_OF = "2024-07-01"


def shop_files(folder: Path, n: int = 400, seed: int = 3, margins: bool = False) -> tuple[Path, Path]:
    """Customers and order lines as a shop exports them: ids, dates, amounts (margin only if asked).

    Buying rates and basket sizes differ between customers and persist, so past spend predicts future spend.
    """
    rng = np.random.default_rng(seed)
    customers = pd.DataFrame({"customer_id": np.arange(1, n + 1), "member_since": "2023-01-01"})
    rate = rng.gamma(0.8, 1 / 40, n)  # orders per day
    basket = rng.gamma(3.0, 20.0, n)
    start, days = pd.Timestamp("2023-07-01"), 366
    counts = rng.poisson(rate * days)
    ids = np.repeat(customers["customer_id"].to_numpy(), counts)
    ts = start + pd.to_timedelta(rng.uniform(0, days, counts.sum()), unit="D")
    amount = np.round(np.repeat(basket, counts) * rng.gamma(4.0, 0.25, counts.sum()), 2)
    orders = pd.DataFrame({"customer_id": ids, "ts": ts.floor("s"), "order_id": [f"o{i}" for i in range(len(ids))],
                           "category": "home", "amount": amount})
    if margins:
        orders["margin"] = np.round(amount * 0.4, 2)
    c, o = folder / "customers.csv", folder / "orders.csv"
    customers.to_csv(c, index=False)
    orders.to_csv(o, index=False)
    return c, o


def run(ws: Workspace, *args: str) -> str:
    result = CliRunner().invoke(app, ["--workspace", str(ws.root), *args])
    assert result.exit_code == 0, result.output
    return result.output


def set_margin_rate(ws: Workspace, rate: str) -> None:
    path = ws.root / "config" / "features.yaml"
    text = path.read_text()
    assert "margin_rate: null" in text
    path.write_text(text.replace("margin_rate: null", f"margin_rate: {rate}"))


@pytest.fixture
def shop(workspace: Workspace, tmp_path: Path) -> Workspace:
    customers, orders = shop_files(tmp_path)
    run(workspace, "data", "import", str(customers), "--table", "customers")
    run(workspace, "data", "import", str(orders), "--table", "transactions")
    return workspace


def snapshot_clv(ws: Workspace) -> pd.Series:
    con = connect(ws.warehouse_path, read_only=True)
    try:
        _, feats, _ = read_snapshot(con, ws.config())
        stored = con.execute("SELECT clv_basis FROM features.manifest").fetchall()
    finally:
        con.close()
    assert stored == [(value_basis_of(ws),)]
    return feats.set_index("customer_id")["clv_12m"]


def value_basis_of(ws: Workspace) -> str:
    con = connect(ws.warehouse_path, read_only=True)
    try:
        return value_basis(con, ws.config()).basis
    finally:
        con.close()


def test_amounts_without_margin_give_a_ranking_clv_and_say_so(shop: Workspace) -> None:
    doc = json.loads(run(shop, "features", "build", "--as-of", AS_OF, "--json"))
    assert doc["value_basis"]["basis"] == "amount"
    assert "no transaction has a margin" in doc["value_basis"]["warning"]
    assert doc["snapshots"][0]["clv_basis"] == "amount" and doc["snapshots"][0]["clv_method"] == "lightgbm"
    clv = snapshot_clv(shop)
    assert clv.nunique() > 50 and clv.max() > 0
    # It ranks: customers who spent more in the last year are worth more in the next.
    con = connect(shop.warehouse_path, read_only=True)
    spend = con.execute("SELECT customer_id, sum(amount) FROM transactions GROUP BY 1").df().set_index("customer_id")
    con.close()
    joined = spend.join(clv).fillna(0.0)
    assert joined.corr(method="spearman").iloc[0, 1] > 0.6

    text = run(shop, "features", "build", "--as-of", AS_OF, "--refit")
    assert "clv: lightgbm on amount" in text and "no transaction has a margin" in text

    quality = json.loads(run(shop, "data", "quality", "--json"))["value_basis"]
    assert quality["basis"] == "amount" and quality["without_margin"] == quality["transactions"] > 0
    assert "set `margin_rate`" in quality["warning"]
    assert "Customer value (clv_12m) basis: amount" in " ".join(run(shop, "data", "quality").split())


def test_a_margin_rate_scales_amounts_and_is_reported(shop: Workspace) -> None:
    run(shop, "features", "build", "--as-of", AS_OF)
    by_amount = snapshot_clv(shop)
    set_margin_rate(shop, "0.25")
    doc = json.loads(run(shop, "features", "build", "--as-of", AS_OF, "--json"))
    assert doc["models_fitted"]  # a new rate is a new feature definition: the CLV model is refitted
    assert doc["value_basis"]["basis"] == doc["snapshots"][0]["clv_basis"] == "amount x margin_rate"
    scaled = snapshot_clv(shop)
    assert scaled.sum() == pytest.approx(0.25 * by_amount.sum(), rel=0.15)
    assert scaled.rank().corr(by_amount.rank()) > 0.95
    quality = json.loads(run(shop, "data", "quality", "--json"))["value_basis"]
    assert quality["basis"] == "amount x margin_rate" and quality["margin_rate"] == 0.25


def test_margins_imported_later_refit_on_margin(shop: Workspace, tmp_path: Path) -> None:
    run(shop, "features", "build", "--as-of", AS_OF)
    _, orders = shop_files(tmp_path, margins=True)
    con = connect(shop.warehouse_path)
    con.execute("DELETE FROM transactions")
    con.close()
    run(shop, "data", "import", str(orders), "--table", "transactions")
    doc = json.loads(run(shop, "features", "build", "--as-of", AS_OF, "--json"))
    assert doc["models_fitted"] and doc["snapshots"][0]["clv_basis"] == "margin"
    assert doc["value_basis"]["warning"] is None


@pytest.mark.parametrize(("margins", "rate", "basis", "warning"), [
    ("all", None, "margin", None),
    ("some", None, "margin", "have no margin and count as 0 margin"),
    ("some", 0.3, "margin", "count as amount x margin_rate (0.3)"),
    ("none", 0.3, "amount x margin_rate", "amount x margin_rate (0.3) from config/features.yaml"),
    ("none", None, "amount", "customer value (clv_12m) is revenue (amount), not margin"),
])
def test_basis_and_line_value(workspace: Workspace, margins: str, rate: float | None, basis: str,
                              warning: str | None) -> None:
    config = load_config(None)
    config = config.model_copy(update={"features": config.features.model_copy(update={"margin_rate": rate})})
    con = connect(workspace.warehouse_path)
    con.execute("INSERT INTO customers (customer_id) VALUES (1)")
    margin = {"all": "10.0", "some": "CASE WHEN i = 0 THEN 10.0 END", "none": "NULL"}[margins]
    con.execute(f"INSERT INTO transactions (customer_id, ts, order_id, category, amount, margin) "
                f"SELECT 1, TIMESTAMP '2024-01-01', 'o' || i, 'home', 100.0, {margin} FROM range(2) t(i)")
    found = value_basis(con, config)
    total = con.execute(f"SELECT sum({found.value_sql}) FROM transactions").fetchone()[0]
    con.close()
    assert found.basis == basis
    assert (found.warning is None) if warning is None else (warning in found.warning)
    expected = {("all", None): 20.0, ("some", None): 10.0, ("some", 0.3): 40.0, ("none", 0.3): 60.0,
                ("none", None): 200.0}[(margins, rate)]
    assert total == pytest.approx(expected)


@pytest.mark.parametrize(("value", "message"), [
    ("0", "features.margin_rate: Input should be greater than 0"),
    ("-0.2", "features.margin_rate: Input should be greater than 0"),
    ("1.5", "features.margin_rate: Input should be less than or equal to 1"),
    ("high", "features.margin_rate: Input should be a valid number"),
])
def test_bad_margin_rate_fails_at_load(workspace: Workspace, value: str, message: str) -> None:
    set_margin_rate(workspace, value)
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        workspace.config()
