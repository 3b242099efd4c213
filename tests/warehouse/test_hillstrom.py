"""The Hillstrom mapping, on the packaged real file (a 3,000-row sample, and once in full)."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from nextbest.cli import app
from nextbest.errors import BadInputError, NotFoundError
from nextbest.warehouse import hillstrom
from nextbest.warehouse.db import connect
from nextbest.workspace import Workspace

SAMPLE_ROWS = 3_000


@pytest.fixture(scope="module")
def full() -> pd.DataFrame:
    frame, _ = hillstrom.read_hillstrom()
    return frame


@pytest.fixture(scope="module")
def sample_csv(tmp_path_factory: pytest.TempPathFactory, full: pd.DataFrame) -> Path:
    # The file's row order is already random, so its head is a fair sample; customer ids
    # (row numbers) then agree with the full file's.
    path = tmp_path_factory.mktemp("hillstrom") / "sample.csv"
    full.head(SAMPLE_ROWS).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def sample(sample_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> duckdb.DuckDBPyConnection:
    con = connect(tmp_path_factory.mktemp("wh") / "warehouse.duckdb")
    hillstrom.import_hillstrom(con, sample_csv, seed=0)
    yield con
    con.close()


def test_packaged_copy_is_the_original_file() -> None:
    raw = gzip.decompress(hillstrom.PACKAGED_PATH.read_bytes())
    assert hashlib.sha256(raw).hexdigest() == hillstrom.SHA256
    frame, digest = hillstrom.read_hillstrom()
    assert digest == hillstrom.SHA256
    assert len(frame) == hillstrom.N_ROWS
    assert list(frame.columns) == list(hillstrom.COLUMNS)


def test_full_import_reproduces_the_published_arm_means(tmp_path: Path) -> None:
    con = connect(tmp_path / "warehouse.duckdb")
    summary = hillstrom.import_hillstrom(con)
    assert summary.original
    means = hillstrom.arm_means(con).set_index("arm")
    assert means["customers"].to_dict() == {"mens_email": 21_307, "none": 21_306, "womens_email": 21_387}
    published = {  # /work/shared/data/README.md: visit / conversion / spend per customer
        "mens_email": (0.1828, 0.0125, 1.423),
        "womens_email": (0.1514, 0.0088, 1.077),
        "none": (0.1062, 0.0057, 0.653),
    }
    for arm, (visit, conversion, spend) in published.items():
        assert means.loc[arm, "visit"] == pytest.approx(visit, abs=5e-5)
        assert means.loc[arm, "conversion"] == pytest.approx(conversion, abs=5e-5)
        assert means.loc[arm, "spend"] == pytest.approx(spend, abs=5e-4)


def test_sample_arm_means_match_the_file(sample: duckdb.DuckDBPyConnection, full: pd.DataFrame) -> None:
    head = full.head(SAMPLE_ROWS)
    expected = head.groupby(head["segment"].map(lambda s: hillstrom.SEGMENT_OFFERS[s] or "none"))[
        ["visit", "conversion", "spend"]
    ].mean()
    means = hillstrom.arm_means(sample).set_index("arm")
    pd.testing.assert_frame_equal(
        means[["visit", "conversion", "spend"]], expected, check_names=False, check_dtype=False, atol=1e-9
    )


def test_customers_map_urbanity_tenure_and_consent(sample: duckdb.DuckDBPyConnection, full: pd.DataFrame) -> None:
    head = full.head(SAMPLE_ROWS)
    customers = sample.execute("SELECT * FROM customers ORDER BY customer_id").df()
    assert customers["customer_id"].tolist() == list(range(1, SAMPLE_ROWS + 1))
    assert customers["urbanity"].tolist() == head["zip_code"].map(
        {"Urban": "urban", "Surburban": "suburban", "Rural": "rural"}).tolist()
    assert customers["consent_email"].all() and customers["valid_email"].all()
    assert customers["consent_sms"].isna().all()
    tenure = (pd.Timestamp(hillstrom.CAMPAIGN_DATE) - pd.to_datetime(customers["member_since"])).dt.days
    newbie = head["newbie"].to_numpy() == 1
    assert (tenure[newbie] <= 365).all() and (tenure[~newbie] > 365).all()


def test_history_becomes_one_order_per_customer(sample: duckdb.DuckDBPyConnection, full: pd.DataFrame) -> None:
    head = full.head(SAMPLE_ROWS).assign(customer_id=np.arange(1, SAMPLE_ROWS + 1))
    orders = sample.execute(
        """SELECT customer_id, count(DISTINCT order_id) AS orders, sum(amount) AS amount,
                  max(ts) AS ts, list(category ORDER BY category) AS categories
           FROM transactions GROUP BY customer_id ORDER BY customer_id"""
    ).df()
    assert (orders["orders"] == 1).all()
    np.testing.assert_allclose(orders["amount"], head["history"], atol=1e-9)
    days = (pd.Timestamp(hillstrom.CAMPAIGN_DATE) - orders["ts"]).dt.total_seconds() / 86_400
    np.testing.assert_allclose(days, head["recency"] * 30 - 0.5)
    expected = [
        [c for c, bought in (("fashion_men", m), ("fashion_women", w)) if bought]
        for m, w in zip(head["mens"], head["womens"], strict=True)
    ]
    assert [list(c) for c in orders["categories"]] == expected


def test_purchase_channel_becomes_interactions(sample: duckdb.DuckDBPyConnection, full: pd.DataFrame) -> None:
    head = full.head(SAMPLE_ROWS)
    kinds = sample.execute(
        "SELECT customer_id, list(type ORDER BY type) AS types FROM interactions GROUP BY 1 ORDER BY 1"
    ).df()
    expected = head["channel"].map(
        {"Web": ["web.purchase"], "Phone": ["service.call.order"], "Multichannel": ["service.call.order", "web.purchase"]}
    )
    assert [list(t) for t in kinds["types"]] == expected.tolist()


def test_decisions_log_the_randomized_arms(sample: duckdb.DuckDBPyConnection, full: pd.DataFrame) -> None:
    head = full.head(SAMPLE_ROWS)
    d = sample.execute("SELECT * FROM decisions ORDER BY customer_id").df()
    control = head["segment"].eq("No E-Mail").to_numpy()
    assert d["experiment"].eq(hillstrom.EXPERIMENT).all() and d["channel"].eq("email").all()
    # Within-arm propensities; times the arms' shares (2/3, 1/3) they give the design's 1/3 per segment.
    np.testing.assert_allclose(d["propensity"], np.where(control, 1.0, 0.5))
    shares = (d.groupby("arm").size() / len(d)).to_dict()
    assert shares == pytest.approx({"control": 1 / 3, "random": 2 / 3}, abs=0.03)
    assert (d["contacted"].to_numpy() == ~control).all()
    assert (d["arm"].to_numpy() == np.where(control, "control", "random")).all()
    treated = ~control
    assert (d["offer_id"][treated].to_numpy() == head["segment"][treated].map(hillstrom.SEGMENT_OFFERS).to_numpy()).all()
    # Each offer gets a random half of the control group as its comparison.
    share = d.loc[control, "offer_id"].eq("mens_email").mean()
    assert d.loc[control, "offer_id"].isin(hillstrom.OFFERS).all() and 0.45 < share < 0.55
    day = pd.Timestamp(hillstrom.CAMPAIGN_DATE)
    assert d["ts"].between(day, day + pd.Timedelta(days=1), inclusive="left").all()
    # Spread over the day, so a time-based split is a random split.
    assert d["ts"].dt.hour.nunique() == 24


def test_responses_fall_inside_the_two_week_window(sample: duckdb.DuckDBPyConnection, full: pd.DataFrame) -> None:
    r = sample.execute(
        """SELECT r.outcome, r.revenue, r.ts - d.ts AS delay, d.customer_id
           FROM responses r JOIN decisions d USING (decision_id)"""
    ).df()
    assert (r["delay"] > pd.Timedelta(0)).all() and (r["delay"] < pd.Timedelta(days=14)).all()
    head = full.head(SAMPLE_ROWS)
    assert r["outcome"].value_counts().to_dict() == {"visit": head["visit"].sum(), "conversion": head["conversion"].sum()}
    conv = r[r["outcome"] == "conversion"].sort_values("customer_id")
    np.testing.assert_allclose(conv["revenue"], head.loc[conv["customer_id"] - 1, "spend"])


def test_mapping_is_deterministic_and_independent_of_sample_size(full: pd.DataFrame) -> None:
    small = hillstrom.synthesise_decisions(full.head(500), seed=3)["decisions"]
    large = hillstrom.synthesise_decisions(full.head(2_000), seed=3)["decisions"].head(500)
    pd.testing.assert_frame_equal(small, large)
    other = hillstrom.synthesise_decisions(full.head(500), seed=4)["decisions"]
    assert not other["ts"].equals(small["ts"])


#: Every table's rows as the importer wrote them before the mapping (see the folder's README).
RECORDED = Path(__file__).parent / "data" / "hillstrom_sample"
#: Sort keys of the recorded tables (interactions have none of their own).
RECORDED_KEYS = {
    "customers": ["customer_id"], "transactions": ["order_id", "category"], "interactions": ["customer_id", "type"],
    "decisions": ["decision_id"], "responses": ["decision_id", "outcome"],
}


@pytest.mark.parametrize("table", list(RECORDED_KEYS))
def test_the_mapping_reproduces_the_former_importers_rows(table: str, sample: duckdb.DuckDBPyConnection) -> None:
    want = pd.read_parquet(RECORDED / f"{table}.parquet")
    assert len(want) > 0
    key = RECORDED_KEYS[table]
    got = sample.execute(f"SELECT {', '.join(want.columns)} FROM {table} ORDER BY {', '.join(key)}").df()
    pd.testing.assert_frame_equal(got, want.sort_values(key, ignore_index=True), check_exact=True)


def test_the_packaged_mapping_loads_the_file_through_the_cli(workspace: Workspace, sample_csv: Path) -> None:
    """`data import --map` alone writes the mapped tables exactly as `import-hillstrom` does."""
    for name in ("channels", "offers", "policy", "features", "training"):
        (workspace.config_dir / f"{name}.yaml").write_text((hillstrom.CONFIG_DIR / f"{name}.yaml").read_text())
    result = CliRunner().invoke(
        app, ["--workspace", str(workspace.root), "data", "import", "--map", str(hillstrom.MAPPING_PATH),
              str(sample_csv), "--json"],
    )
    assert result.exit_code == 0, result.output
    rows = {}
    for doc in json.loads(result.output):
        rows[doc["table"]] = rows.get(doc["table"], 0) + doc["rows"]
    assert rows == {"customers": SAMPLE_ROWS, "transactions": 3305, "interactions": 3346}
    con = duckdb.connect(str(workspace.warehouse_path), read_only=True)
    try:
        for table in ("customers", "transactions", "interactions"):
            want = pd.read_parquet(RECORDED / f"{table}.parquet")
            key = RECORDED_KEYS[table]
            got = con.execute(f"SELECT {', '.join(want.columns)} FROM {table} ORDER BY {', '.join(key)}").df()
            pd.testing.assert_frame_equal(got, want.sort_values(key, ignore_index=True), check_exact=True)
    finally:
        con.close()


def _edit(frame: pd.DataFrame, column: str, value: object) -> pd.DataFrame:
    frame = frame.copy()
    frame[column] = frame[column].astype(object)
    frame.loc[5, column] = value
    return frame


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop(columns="segment"), "missing column(s) ['segment']"),
        (lambda f: _edit(f, "segment", "Kids E-Mail"), "column 'segment' has value(s) ['Kids E-Mail']"),
        (lambda f: _edit(f, "zip_code", "Suburban"), "column 'zip_code' has value(s) ['Suburban']"),
        (lambda f: _edit(f, "channel", None), "column 'channel' has value(s) ['<empty>']"),
        (lambda f: _edit(f, "recency", 13), "line 7: column 'recency' is 13; it must be >= 1 and <= 12"),
        (lambda f: _edit(f, "history", -1.0), "line 7: column 'history' is -1.0; it must be >= 0"),
        (lambda f: _edit(f, "visit", 2), "line 7: column 'visit' is 2; it must be 0 or 1"),
        (lambda f: _edit(f, "spend", "lots"), "line 7: column 'spend' is 'lots'"),
        (lambda f: f.assign(mens=0, womens=0), "mens = womens = 0"),
        (lambda f: f.assign(visit=0, conversion=1), "conversion = 1 but visit = 0"),
        (lambda f: f.head(0), "no rows"),
    ],
)
def test_invalid_files_are_rejected_naming_the_column(
    change, message: str, full: pd.DataFrame, tmp_path: Path
) -> None:
    path = tmp_path / "bad.csv"
    change(full.head(20)).to_csv(path, index=False)
    with pytest.raises(BadInputError) as err:
        hillstrom.read_hillstrom(path)
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("content", "error", "message"),
    [
        (None, NotFoundError, "does not exist"),
        (b"\x1f\x8b\x08\x00garbage", BadInputError, "corrupt gzip"),
        (b"", BadInputError, "not a readable CSV"),
    ],
)
def test_unreadable_files(content: bytes | None, error: type[Exception], message: str, tmp_path: Path) -> None:
    path = tmp_path / "hillstrom.csv.gz"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(error, match=message):
        hillstrom.read_hillstrom(path)


def test_checksum_mismatch_is_refused(sample_csv: Path) -> None:
    with pytest.raises(BadInputError, match=f"expected {hillstrom.SHA256}; the file is altered or truncated"):
        hillstrom.read_hillstrom(sample_csv, expected_sha256=hillstrom.SHA256)


def test_import_refuses_a_warehouse_with_customers(sample: duckdb.DuckDBPyConnection, sample_csv: Path) -> None:
    with pytest.raises(BadInputError, match=f"already holds {SAMPLE_ROWS} customers; .* fresh workspace"):
        hillstrom.import_hillstrom(sample, sample_csv)


def test_cli_imports_and_installs_the_example_config(workspace: Workspace, sample_csv: Path) -> None:
    result = CliRunner().invoke(app, ["--workspace", str(workspace.root), "data", "import-hillstrom",
                                      str(sample_csv), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["rows"]["decisions"] == SAMPLE_ROWS and doc["original"] is False
    assert "config/offers.yaml" in doc["config_written"]
    config = workspace.config()
    assert [o.id for o in config.offers.offers] == list(hillstrom.OFFERS)
    assert config.channel("email").cost_per_contact == 0.10 and config.channels.currency == "USD"


def test_cli_keeps_an_edited_config_and_exits_2(workspace: Workspace, sample_csv: Path) -> None:
    offers = workspace.config_dir / "offers.yaml"
    offers.write_text(offers.read_text() + "\n# my edit\n")
    result = CliRunner().invoke(app, ["--workspace", str(workspace.root), "data", "import-hillstrom", str(sample_csv)])
    assert isinstance(result.exception, BadInputError) and result.exception.exit_code == 2
    assert "offers.yaml was edited" in str(result.exception) and "--keep-config" in str(result.exception)
    # Nothing was written: the check runs before the import.
    con = duckdb.connect(str(workspace.warehouse_path)) if workspace.warehouse_path.exists() else None
    assert con is None or con.execute("SELECT count(*) FROM customers").fetchone()[0] == 0
