"""The Hillstrom e-mail experiment (MineThatData, 2008) mapped onto the data contract.

Kevin Hillstrom's *E-Mail Analytics and Data Mining Challenge* is a real, randomized
campaign of 64,000 customers: a third got an e-mail featuring men's merchandise, a
third one featuring women's merchandise, a third nothing; visits, conversions and
spend were tracked for two weeks. This module turns the file into ordinary warehouse
rows so that the *standard* feature pipeline, trainer, uplift report and policy
evaluation run on it unchanged; nothing downstream knows it is Hillstrom.

The customers, transactions and interactions are a mapping (:data:`MAPPING_PATH`,
``examples/hillstrom/mapping.yaml``), loaded like any user's with the import's checks;
only the decisions and responses are code (:func:`synthesise_decisions`, which says why).

Mapping (one campaign, dated :data:`CAMPAIGN_DATE`)
-------------------------------------------------------------
customers
    ``customer_id`` = 1-based row number of the file. ``zip_code`` becomes
    ``urbanity`` (the file's ``Surburban`` is ``suburban``). ``newbie`` becomes
    ``member_since``: a newbie joined in the last twelve months, so it is the date
    of the last purchase (the latest date consistent with the file); any other
    customer joined more than a year ago, dated 2006-03-01.
    Every customer was e-mailed, so ``consent_email`` and ``valid_email`` are
    true; other consents are unknown (null = no consent).
transactions
    ``history`` (spend in the past year) becomes one order dated ``recency`` months
    of 30 days before the campaign (so every order lies inside a 365-day window;
    ``recency_days`` = 30 x ``recency``), with one line per category the customer
    bought: ``fashion_men`` (``mens``), ``fashion_women`` (``womens``), the amount
    split evenly when both.
interactions
    The purchase channel is *where the customer bought*, not a contact preference
    (``preferred_channel`` stays unknown): ``Web`` is a ``web.purchase`` and
    ``Phone`` a ``service.call.order`` at the order time, ``Multichannel`` both.
decisions
    One decision per customer on the campaign day, experiment
    :data:`EXPERIMENT`. Each of the three 2008 segments had probability 1/3. As
    everywhere in nextbest, ``propensity`` is the probability *within the arm*
    and the arm's share of the experiment supplies the rest: the two e-mail
    segments are arm ``random`` (2/3 of customers), contacted, uniform over the
    two offers (propensity 1/2) on channel ``email``; ``No E-Mail`` is arm
    ``control`` (1/3), contacted false, propensity 1 (its policy, "contact
    nobody", is deterministic). 2/3 x 1/2 = 1/3 x 1 = 1/3, the design's
    probabilities. The trainer compares a contacted offer
    with control rows *of the same offer*, so each control decision records one
    of the two offers, chosen 50/50 by a seeded hash of the customer id: each
    offer gets a random half of the control group as its comparison, and every
    customer keeps exactly one decision (the arm means stay exact). Decision
    times are spread over the campaign day by another seeded hash, so the
    trainer's time-based split is, in effect, a random split.
responses
    ``visit`` and ``conversion`` (revenue = ``spend``), dated at the end of the
    two tracked weeks (:data:`RESPONSE_DELAY` after the decision, just inside a
    14-day response window): the file does not date outcomes within them.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from nextbest.config import NextbestConfig, load_config
from nextbest.errors import BadInputError, NotFoundError
from nextbest.warehouse.db import transaction
from nextbest.warehouse.mapping import load_frame, load_mapping
from nextbest.warehouse.schema import TABLES

#: sha256 of the original, uncompressed file (LF line endings, no trailing newline).
SHA256 = "ff9e59285e9dc3f5fa3e0975419e6631ea5bdccd65d818991473d2367e02979c"
#: Number of rows of the original file.
N_ROWS = 64_000
#: The packaged, gzip-compressed copy (see ``examples/hillstrom/PROVENANCE.md``).
PACKAGED_PATH = Path(__file__).resolve().parent.parent / "examples" / "hillstrom" / "hillstrom.csv.gz"
#: The example workspace configuration (offers, channels, policy, training).
CONFIG_DIR = PACKAGED_PATH.parent / "config"
#: The file's layout mapped onto the contract: customers, transactions, interactions.
MAPPING_PATH = PACKAGED_PATH.parent / "mapping.yaml"

#: The file carries no dates; the campaign is placed here (a Saturday in spring 2008).
CAMPAIGN_DATE = dt.date(2008, 3, 1)
EXPERIMENT = "hillstrom-2008"
CHANNEL = "email"
#: ``segment`` value -> offer id (``None``: the no-e-mail control arm).
SEGMENT_OFFERS: dict[str, str | None] = {
    "Mens E-Mail": "mens_email",
    "Womens E-Mail": "womens_email",
    "No E-Mail": None,
}
OFFERS: tuple[str, ...] = ("mens_email", "womens_email")
#: Each of the three 2008 segments had probability 1/3: arm share x within-arm propensity.
SEGMENT_PROBABILITY = 1.0 / len(SEGMENT_OFFERS)
#: Within-arm propensities: the ``random`` arm picks one of the offers uniformly, control is deterministic.
RANDOM_PROPENSITY = 1.0 / len(OFFERS)
CONTROL_PROPENSITY = 1.0
RESPONSE_DELAY = dt.timedelta(days=14) - dt.timedelta(seconds=1)

URBANITY = {"Urban": "urban", "Surburban": "suburban", "Rural": "rural"}
#: Purchase channels of the file (the mapping records ``web.purchase`` / ``service.call.order`` for them).
PURCHASE_CHANNELS: tuple[str, ...] = ("Web", "Phone", "Multichannel")
COLUMNS: tuple[str, ...] = (
    "recency", "history_segment", "history", "mens", "womens", "zip_code",
    "newbie", "channel", "segment", "visit", "conversion", "spend",
)
_BINARY = ("mens", "womens", "newbie", "visit", "conversion")


@dataclass(frozen=True)
class HillstromImport:
    """What :func:`import_hillstrom` wrote.

    Attributes
    ----------
    path
        The file read.
    sha256
        sha256 of its (decompressed) content.
    original
        Whether that is the original file's checksum (:data:`SHA256`).
    rows
        Rows written per warehouse table.
    """

    path: Path
    sha256: str
    original: bool
    rows: dict[str, int]

    def as_dict(self) -> dict[str, object]:
        return {"path": str(self.path), "sha256": self.sha256, "original": self.original,
                "experiment": EXPERIMENT, "campaign_date": CAMPAIGN_DATE.isoformat(), "rows": self.rows}


# --------------------------------------------------------------------------- reading
def read_bytes(path: Path) -> bytes:
    """The file's content, decompressed when it is gzip (by magic number, not suffix)."""
    if not path.is_file():
        raise NotFoundError(f"Hillstrom file {path} does not exist; pass the path of hillstrom.csv(.gz)")
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise BadInputError(f"{path}: corrupt gzip ({exc}); copy the file again") from exc
    return data


def read_hillstrom(path: Path | None = None, *, expected_sha256: str | None = None) -> tuple[pd.DataFrame, str]:
    """Read and validate a Hillstrom CSV (plain or gzip).

    Parameters
    ----------
    path
        The file; ``None`` reads the packaged copy and checks it against
        :data:`SHA256`.
    expected_sha256
        Checksum the decompressed content must have; ``None`` checks nothing
        (a sample of the file, for instance).

    Returns
    -------
    frame, sha256
        The rows with the file's columns, and the content's checksum.

    Raises
    ------
    BadInputError
        A checksum mismatch, a missing column or a value outside the file's
        vocabulary, naming the column and the fix.
    """
    if path is None:
        path, expected_sha256 = PACKAGED_PATH, expected_sha256 or SHA256
    data = read_bytes(path)
    digest = hashlib.sha256(data).hexdigest()
    if expected_sha256 is not None and digest != expected_sha256:
        raise BadInputError(
            f"{path}: sha256 of the content is {digest}, expected {expected_sha256}; "
            "the file is altered or truncated, restore it from examples/hillstrom/hillstrom.csv.gz"
        )
    try:
        frame = pd.read_csv(io.BytesIO(data))
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise BadInputError(f"{path}: not a readable CSV ({exc})") from exc
    validate(frame, source=str(path))
    return frame, digest


def validate(frame: pd.DataFrame, *, source: str = "hillstrom") -> None:
    """Check columns, vocabularies and ranges; raise :class:`BadInputError` naming the problem."""
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise BadInputError(f"{source}: missing column(s) {missing}; a Hillstrom file has {list(COLUMNS)}")
    if frame.empty:
        raise BadInputError(f"{source}: no rows")
    vocab = {"segment": SEGMENT_OFFERS, "zip_code": URBANITY, "channel": PURCHASE_CHANNELS}
    for column, allowed in vocab.items():
        bad = sorted(set(frame[column].dropna().astype(str)) - set(allowed))
        if bad or frame[column].isna().any():
            shown = bad[:5] if bad else ["<empty>"]
            raise BadInputError(f"{source}: column {column!r} has value(s) {shown}; allowed: {sorted(allowed)}")
    numeric = {"recency": (1, 12), "history": (0, None), "spend": (0, None)}
    for column in (*numeric, *_BINARY):
        values = pd.to_numeric(frame[column], errors="coerce")
        low, high = numeric.get(column, (0, 1))
        bad_mask = values.isna() | (values < low) | ((values > high) if high is not None else False)
        if column in _BINARY:
            bad_mask |= ~values.isin([0, 1])
        if bad_mask.any():
            first = frame.loc[bad_mask, column].iloc[0]
            first = first.item() if hasattr(first, "item") else first
            row = int(np.flatnonzero(bad_mask.to_numpy())[0]) + 2  # +1 header, +1 one-based
            rng = "0 or 1" if column in _BINARY else f">= {low}" + (f" and <= {high}" if high is not None else "")
            raise BadInputError(f"{source}: line {row}: column {column!r} is {first!r}; it must be {rng}")
    if ((frame["mens"] == 0) & (frame["womens"] == 0)).any():
        raise BadInputError(f"{source}: a row has mens = womens = 0; every Hillstrom customer bought one of them")
    if ((frame["conversion"] == 1) & (frame["visit"] == 0)).any():
        raise BadInputError(f"{source}: a row has conversion = 1 but visit = 0; a purchase implies a visit")


# --------------------------------------------------------------------------- mapping
def unit_hash(keys: np.ndarray, seed: int, salt: int) -> np.ndarray:
    """A deterministic uniform number in [0, 1) per key (splitmix64 of key, seed, salt).

    Independent of the row order and of numpy's random generators, so the same
    customer gets the same draw in a 3,000-row sample and in the full file.
    """
    with np.errstate(over="ignore"):
        x = keys.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        x ^= np.uint64((seed * 0x632BE59BD9B4E019 + salt * 0x85EBCA77C2B2AE63) & 0xFFFFFFFFFFFFFFFF)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)


_SALT_TIME, _SALT_CONTROL_OFFER = 1, 2


def synthesise_decisions(raw: pd.DataFrame, *, seed: int = 0) -> dict[str, pd.DataFrame]:
    """The decisions and responses of the Hillstrom campaign (no I/O).

    The customers, order history and purchase channels are a mapping
    (:data:`MAPPING_PATH`); these two tables stay code because the control rows'
    offer and every decision's time come from :func:`unit_hash`, a seeded hash of
    the customer id that DuckDB SQL has no function for (its ``hash`` is not
    splitmix64, and the draws must stay those of earlier imports).

    Parameters
    ----------
    raw
        Rows as returned by :func:`read_hillstrom`, in file order.
    seed
        Seed of the decision-time spread and of the control rows' offer.

    Returns
    -------
    dict
        ``decisions`` and ``responses`` frames with contract column names.
    """
    n = len(raw)
    customer_id = np.arange(1, n + 1, dtype=np.int64)
    campaign = pd.Timestamp(CAMPAIGN_DATE)

    offer = raw["segment"].map(SEGMENT_OFFERS).to_numpy(dtype=object)
    control = raw["segment"].to_numpy() == "No E-Mail"
    control_offer = np.where(unit_hash(customer_id, seed, _SALT_CONTROL_OFFER) < 0.5, OFFERS[0], OFFERS[1])
    offer = np.where(control, control_offer, offer)
    # Whole microseconds: timestamps must survive a round trip through DuckDB unchanged.
    spread_us = np.floor(unit_hash(customer_id, seed, _SALT_TIME) * 86_400e6).astype(np.int64)
    decision_ts = pd.DatetimeIndex(campaign + pd.to_timedelta(spread_us, unit="us")).as_unit("us")
    decision_id = EXPERIMENT + "-" + pd.Series(customer_id).astype(str)
    decisions = pd.DataFrame({
        "decision_id": decision_id,
        "customer_id": customer_id,
        "ts": decision_ts,
        "offer_id": offer,
        "channel": CHANNEL,
        "arm": np.where(control, "control", "random"),
        "experiment": EXPERIMENT,
        "propensity": np.where(control, CONTROL_PROPENSITY, RANDOM_PROPENSITY),
        "model_version": None,
        "score": None,
        "contacted": ~control,
    })

    outcome_ts = decision_ts + RESPONSE_DELAY
    visit, conversion = raw["visit"].to_numpy() == 1, raw["conversion"].to_numpy() == 1
    responses = pd.concat(
        [
            pd.DataFrame({"decision_id": decision_id[visit], "ts": outcome_ts[visit], "outcome": "visit", "revenue": None}),
            pd.DataFrame({"decision_id": decision_id[conversion], "ts": outcome_ts[conversion], "outcome": "conversion",
                          "revenue": raw["spend"].to_numpy(dtype=float)[conversion]}),
        ],
        ignore_index=True,
    )
    responses["revenue"] = responses["revenue"].astype(float)
    return {"decisions": decisions, "responses": responses}


# --------------------------------------------------------------------------- writing
def import_hillstrom(con: duckdb.DuckDBPyConnection, path: Path | None = None, *, seed: int = 0,
                     config: NextbestConfig | None = None) -> HillstromImport:
    """Read, map and write the Hillstrom file into the warehouse in one transaction.

    Customers, transactions and interactions come from the mapping
    (:data:`MAPPING_PATH`, checked like any import); decisions and responses from
    :func:`synthesise_decisions`.

    Parameters
    ----------
    con
        A writable warehouse connection (:func:`nextbest.warehouse.db.connect`).
    path
        The file (CSV or gzip); ``None`` = the packaged copy, checksum-verified.
        Any other file is read as is, so a sample works; the summary says whether
        it is the original.
    seed
        See :func:`synthesise_decisions`.
    config
        Vocabularies of the import checks; ``None`` = the example's (:data:`CONFIG_DIR`).

    Raises
    ------
    BadInputError
        The file is invalid, or the warehouse already holds customers (customer
        ids are the file's row numbers and would collide).
    """
    raw, digest = read_hillstrom(path)
    existing = con.execute("SELECT count(*) FROM customers").fetchone()[0]
    if existing:
        raise BadInputError(
            f"the warehouse already holds {existing} customers; Hillstrom customer ids are the file's row "
            "numbers, so import it into a fresh workspace (nextbest --workspace DIR data import-hillstrom)"
        )
    frames = synthesise_decisions(raw, seed=seed)
    rows: dict[str, int] = {}
    with transaction(con):
        for result in load_frame(con, load_mapping(MAPPING_PATH), raw, config or load_config(CONFIG_DIR),
                                 mapping_name=MAPPING_PATH.name, path=path or PACKAGED_PATH, in_transaction=True):
            rows[result.table] = rows.get(result.table, 0) + result.rows
        for name, frame in frames.items():
            columns = [c for c in TABLES[name].column_names if c in frame.columns]
            con.register("_hillstrom_rows", frame[columns])
            try:
                con.execute(f"INSERT INTO {name} ({', '.join(columns)}) SELECT {', '.join(columns)} FROM _hillstrom_rows")
            finally:
                con.unregister("_hillstrom_rows")
            rows[name] = len(frame)
    return HillstromImport(
        path=path or PACKAGED_PATH, sha256=digest, original=digest == SHA256,
        rows=rows,
    )


def arm_means(con: duckdb.DuckDBPyConnection, experiment: str = EXPERIMENT) -> pd.DataFrame:
    """Visit, conversion and spend per customer of each arm, read back from the warehouse.

    The arm is the 2008 segment: the contacted offer, or ``none`` for control rows
    (whatever offer they record). One row per arm: ``arm, customers, visit,
    conversion, spend``.
    """
    return con.execute(
        """
        SELECT CASE WHEN d.contacted THEN d.offer_id ELSE 'none' END AS arm,
               count(*) AS customers,
               avg(coalesce(r.visit, 0)) AS visit,
               avg(coalesce(r.conversion, 0)) AS conversion,
               avg(coalesce(r.spend, 0)) AS spend
        FROM decisions d
        LEFT JOIN (
            SELECT decision_id,
                   max(CASE WHEN outcome = 'visit' THEN 1 ELSE 0 END) AS visit,
                   max(CASE WHEN outcome = 'conversion' THEN 1 ELSE 0 END) AS conversion,
                   sum(CASE WHEN outcome = 'conversion' THEN coalesce(revenue, 0) ELSE 0 END) AS spend
            FROM responses GROUP BY decision_id
        ) r USING (decision_id)
        WHERE d.experiment = ?
        GROUP BY 1 ORDER BY 1
        """,
        [experiment],
    ).df()
