"""Batch decisions for a day: every customer's next best actions, the file campaign tools pick up.

``nextbest decide`` decides the whole latest feature snapshot in one
:meth:`DecisionEngine.decide <nextbest.decisioning.engine.DecisionEngine.decide>`
call (so daily channel capacities and offer caps are allocated over the whole
batch, as for any batch), replaces the engine's random decision ids by ids
derived from the day, the seed and the customer (the same run gives the same
file), and registers the decisions in the live store through the contact gate
(:func:`register_batch`): a batch beside a running service respects the caps the
service's contacts used, and a decision the gate refuses is decided again with
those contacts known.

The engine on Spark (:mod:`nextbest.spark.decide`) produces the same rows from
the same functions.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from sqlalchemy import func, select

from nextbest.decisioning.engine import DecisionEngine
from nextbest.decisioning.history import ContactHistory
from nextbest.decisioning.log import as_decision_rows
from nextbest.errors import BadInputError, NextbestError, NotFoundError
from nextbest.live.register import ContactGate, decision_dicts, write
from nextbest.live.schema import decisions as live_decisions
from nextbest.live.store import LiveStore
from nextbest.workspace import Workspace

#: Columns of the decide file, in order: the decision document's action fields.
FILE_COLUMNS: tuple[str, ...] = (
    "decision_id", "customer_id", "rank", "offer_id", "channel", "probability", "uplift", "expected_value",
    "propensity", "arm",
)
#: The file's declared schema (Parquet; CSV holds the same columns).
FILE_SCHEMA = pa.schema([
    ("decision_id", pa.string()), ("customer_id", pa.int64()), ("rank", pa.int32()), ("offer_id", pa.string()),
    ("channel", pa.string()), ("probability", pa.float64()), ("uplift", pa.float64()),
    ("expected_value", pa.float64()), ("propensity", pa.float64()), ("arm", pa.string()),
])
#: Columns of :func:`decide_rows`: the file's, plus what registering the decision needs.
ROW_COLUMNS: tuple[str, ...] = (*FILE_COLUMNS, "ts", "experiment", "model_version", "contacted")
#: How often customers whose contact the gate refused are decided again before the run fails.
RETRIES = 3
_SUFFIXES = (".parquet", ".csv")


def run_prefix(day: dt.date) -> str:
    """The decision-id prefix of a day's batch (what tells a run already registered)."""
    return f"decide-{day:%Y%m%d}-"


def decision_ids(day: dt.date, seed: int, customer_ids: np.ndarray) -> np.ndarray:
    """Deterministic decision ids: ``decide-<YYYYMMDD>-s<seed>-<customer_id>`` (the ranks of one
    customer share its decision, as in the decision document)."""
    ids = np.asarray(customer_ids, dtype=np.int64).astype(str)
    return np.char.add(f"{run_prefix(day)}s{seed}-", ids).astype(object)


def decide_rows(
    engine: DecisionEngine,
    features: pd.DataFrame,
    offer_history: pd.DataFrame | None,
    at: dt.datetime,
    *,
    seed: int,
    top_k: int,
    history: ContactHistory,
) -> pd.DataFrame:
    """Decide ``features`` at ``at``: one row per customer and rank (:data:`ROW_COLUMNS`).

    Customers are decided in ``customer_id`` order, which fixes how equal ranking
    keys share a capacity, whatever order the frame came in.

    Parameters
    ----------
    engine
        The decision engine (champion and challenger scorers).
    features, offer_history
        One snapshot's customer features and offer history.
    at
        Decision time (naive UTC): the day's start.
    seed
        Exploration seed.
    top_k
        Ranked actions per customer.
    history
        Contact history at ``at`` (not changed: the batch's contacts are recorded by the gate).
    """
    features = features.sort_values("customer_id", kind="stable").reset_index(drop=True)
    d = engine.decide(features, at, seed=seed, history=history, offer_history=offer_history, top_k=top_k, record=False)
    dec = d.decisions
    ids = decision_ids(at.date(), seed, dec["customer_id"].to_numpy(np.int64))
    per_decision = dec.assign(decision_id=ids).set_index(dec["decision_id"])
    a = d.actions
    joined = per_decision.loc[a["decision_id"].to_numpy(), ["decision_id", "arm", "ts", "experiment", "model_version", "contacted"]]
    rows = a.drop(columns=["decision_id"]).reset_index(drop=True).assign(
        **{c: joined[c].to_numpy() for c in joined.columns}
    )
    out = rows.loc[:, list(ROW_COLUMNS)]
    out["rank"] = out["rank"].astype("int32")
    out["customer_id"] = out["customer_id"].astype("int64")
    for c in ("probability", "uplift", "expected_value", "propensity"):
        out[c] = out[c].astype("float64")
    for c in ("offer_id", "channel", "arm", "decision_id", "experiment", "model_version"):
        out[c] = out[c].astype(object)
    out["contacted"] = out["contacted"].astype(bool)
    return out.sort_values(["customer_id", "rank"], kind="stable").reset_index(drop=True)


def decision_frame(rows: pd.DataFrame) -> pd.DataFrame:
    """The ``decisions`` rows (one per customer, its rank-1 action) of :func:`decide_rows` rows."""
    top = rows[rows["rank"] == 1]
    return as_decision_rows(top.assign(score=top["expected_value"]))


def file_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """What the file holds: the ranked actions of every customer the batch contacts.

    Held-out (control arm) customers and customers with no action are registered
    (the exposure log needs them) but left out: nothing is to be sent to them.
    """
    sent = rows.loc[rows["contacted"] & (rows["rank"] == 1), "customer_id"]
    out = rows[rows["customer_id"].isin(sent) & rows["offer_id"].notna()]
    return out.loc[:, list(FILE_COLUMNS)].reset_index(drop=True)


def check_output(output: Path) -> None:
    """Refuse an output the file cannot be written to, before any work is done (and anything registered)."""
    if output.suffix not in _SUFFIXES:
        raise BadInputError(f"--output {output}: use a .parquet or .csv file name")
    if output.exists() and output.is_dir():
        raise BadInputError(f"--output {output}: is a folder; name a file")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInputError(f"--output {output}: cannot create its folder ({exc.strerror}); name a writable place") from None
    if not os.access(output.parent, os.W_OK):
        raise BadInputError(f"--output {output}: its folder is not writable; name a writable place")


def write_file(rows: pd.DataFrame, output: Path) -> None:
    """Write the file rows atomically (a temporary file renamed into place: never half-written)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp")
    table = pa.Table.from_pandas(rows.loc[:, list(FILE_COLUMNS)], schema=FILE_SCHEMA, preserve_index=False)
    if output.suffix == ".csv":
        rows.loc[:, list(FILE_COLUMNS)].to_csv(tmp, index=False, float_format="%.17g")
    else:
        import pyarrow.parquet as pq

        pq.write_table(table, tmp)
    tmp.replace(output)


def registered_run(store: LiveStore, day: dt.date) -> tuple[int, str | None]:
    """Decisions of ``day``'s batch already in the live store, and one of their ids."""
    with store.reading() as con:
        like = live_decisions.c.decision_id.like(f"{run_prefix(day)}%")
        n = int(con.execute(select(func.count()).where(like)).scalar_one())
        first = con.execute(select(live_decisions.c.decision_id).where(like).limit(1)).scalar() if n else None
    return n, first


def refuse_second_run(store: LiveStore, day: dt.date) -> None:
    """A day's batch registers once: a second run would contact the same customers twice.

    Raises
    ------
    BadInputError
        When decisions of ``day``'s batch are registered already.
    """
    n, first = registered_run(store, day)
    if n:
        run = first.rsplit("-", 1)[0] if first else run_prefix(day)
        raise BadInputError(
            f"--date {day}: the day's batch is already registered in the live store ({n} decisions of run {run}); "
            "a batch registers once per day: add --dry-run to write the file without registering"
        )


@dataclass(frozen=True)
class Registered:
    """What :func:`register_batch` stored."""

    decisions: int
    contacts: int
    #: Customers decided again because the gate refused their first contact.
    redecided: int


def register_batch(
    store: LiveStore,
    gate: ContactGate,
    rows: pd.DataFrame,
    redecide: Callable[[np.ndarray, ContactHistory], pd.DataFrame],
) -> tuple[pd.DataFrame, Registered]:
    """Register a batch's decisions through ``gate``; returns the rows as registered.

    ``gate`` was reset before the batch was decided, and the batch decided with a
    history of the same rows, so only what other writers committed since makes the
    gate check a contact again (``checked``). A refused contact (a service contacted
    the customer, or took a capacity, meanwhile) is decided again with the gate's
    history (which holds those contacts) by ``redecide(customer_ids, history)``.

    Raises
    ------
    ContactConflictError
        When contacts are still refused after :data:`RETRIES` new decisions.
    """
    redecided = 0
    pending = rows
    for attempt in range(RETRIES + 1):
        frame = decision_frame(pending)
        with store.writing() as con:
            written = write(con, store, decision_dicts(frame, store.writer), gate=gate, checked=True)
        if not written.rejected:
            break
        if attempt == RETRIES:
            raise NextbestError(
                f"{len(written.rejected)} contacts were still refused by the live store's contact gate after "
                f"{RETRIES} new decisions (other writers keep taking them); run again with --dry-run to see the batch"
            )
        refused = frame.loc[frame["decision_id"].isin(written.rejected), "customer_id"].to_numpy(np.int64)
        redecided += len(refused)
        again = redecide(refused, gate.history)
        rows = pd.concat([rows[~rows["customer_id"].isin(refused)], again], ignore_index=True)
        rows = rows.sort_values(["customer_id", "rank"], kind="stable").reset_index(drop=True)
        pending = again
    top = rows[rows["rank"] == 1]
    return rows, Registered(len(top), int(top["contacted"].sum()), redecided)


def run_decide(
    ws: Workspace,
    *,
    date: str,
    output: Path,
    top_k: int = 1,
    engine: str = "local",
    lake: Path | str | None = None,
    master: str | None = None,
    dry_run: bool = False,
    seed: int = 0,
) -> dict[str, object]:
    """``nextbest decide``: decide the day, register the decisions (unless ``dry_run``), write the file.

    The contact gate is reset *before* deciding and the batch decided with a history
    of the same rows, so registering re-checks only what other writers committed
    meanwhile. Registration comes before the file is renamed into place: a file
    campaign tools find is always one whose contacts are registered.

    Raises
    ------
    BadInputError
        Bad options (naming the option and the fix), or the day's batch registered already.
    NotFoundError
        No champion, no feature snapshot, or no lake.
    """
    from nextbest.decisioning.cli import load_features, load_scorers
    from nextbest.live.history import BaseHistory, build_history
    from nextbest.warehouse.db import connect

    check_output(output)
    if engine not in ("local", "spark"):
        raise BadInputError(f"--engine {engine!r}: use local or spark")
    if engine == "spark" and lake is None:
        raise BadInputError("--lake: required with --engine spark; name the folder `nextbest data export --output` wrote")
    if engine == "local" and (lake is not None or master is not None):
        raise BadInputError("--lake/--master: only read by --engine spark; add --engine spark or drop them")
    if lake is not None and "://" not in str(lake) and not Path(lake).is_dir():
        raise BadInputError(f"--lake {lake}: no such folder; write one with `nextbest data export --output {lake}`")
    try:
        day = dt.date.fromisoformat(date)
    except ValueError:
        raise BadInputError(f"--date {date!r}: not a date; use YYYY-MM-DD") from None
    at = dt.datetime.combine(day, dt.time())
    config = ws.config()
    scorers = load_scorers(ws, config)
    decision_engine = DecisionEngine(config, scorers)
    store = LiveStore.for_workspace(ws, writer=f"decide-{os.getpid()}-{uuid.uuid4().hex[:6]}")
    try:
        if not dry_run:
            refuse_second_run(store, day)
        if not ws.warehouse_path.exists():
            raise NotFoundError(f"no warehouse at {ws.warehouse_path}; run `nextbest data generate` or `nextbest data import`")
        con = connect(ws.warehouse_path, read_only=True)
        try:
            base = BaseHistory.read(con, config, at, store.store_id)
        finally:
            con.close()
        gate = ContactGate(store, config, base)
        with store.reading() as live:
            contacts, negatives = gate.reset(live)
        history = build_history(config, base, contacts, negatives)

        if engine == "spark":
            from nextbest.spark.decide import decide_spark
            from nextbest.spark.session import get_session

            rows, snapshot = decide_spark(get_session(master), lake, config, scorers, at, seed=seed, top_k=top_k,  # type: ignore[arg-type]
                                          history=history)
            as_of = snapshot.as_of

            def features_of(ids: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
                return snapshot.of(ids)
        else:
            as_of, features, offer_history = load_features(ws, config)
            rows = decide_rows(decision_engine, features, offer_history, at, seed=seed, top_k=top_k, history=history)

            def features_of(ids: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
                return (features[features["customer_id"].isin(ids)],
                        offer_history[offer_history["customer_id"].isin(ids)])

        def redecide(ids: np.ndarray, known: ContactHistory) -> pd.DataFrame:
            f, o = features_of(ids)
            return decide_rows(decision_engine, f, o, at, seed=seed, top_k=top_k, history=known)

        registered = None
        if not dry_run:
            rows, registered = register_batch(store, gate, rows, redecide)
    finally:
        store.close()
    sent = file_rows(rows)
    write_file(sent, output)
    top = rows[rows["rank"] == 1]
    return {
        "date": day.isoformat(), "engine": engine, "model_version": next(iter(scorers.values())).model_version,
        "snapshot_as_of": pd.Timestamp(as_of).isoformat(),
        "customers": int(len(top)), "contacts": int(top["contacted"].sum()),
        "held_out": int((~top["contacted"] & top["offer_id"].notna()).sum()),
        "no_action": int(top["offer_id"].isna().sum()), "rows": int(len(sent)), "output": str(output),
        "registered": registered.decisions if registered else 0,
        "redecided": registered.redecided if registered else 0, "dry_run": dry_run, "seed": seed,
    }
