"""An offer catalogue from a file: ``nextbest offers import FILE``.

A business keeps its offers in a product or campaign tool, not in YAML. This
module reads such an export (CSV or Parquet, one offer a row), validates every
row against the same :class:`~nextbest.config.Offer` model the configuration
uses, and writes the workspace's ``config/offers.yaml`` — all or nothing:

* every row is checked before anything is written, and every bad row is reported
  with its row number, the column and the fix;
* the new ``offers.yaml`` is then loaded with the other config files through
  :func:`~nextbest.config.load_config` (so triggers, segments and rules are checked
  against the whole configuration), and only then replaces the old file atomically.

Merging with the catalogue already there (:data:`MODES`): ``add`` (the default)
adds the file's offers and refuses an id that is already configured, ``update``
overwrites configured offers of the same id and adds the others, ``replace`` makes
the file the whole catalogue.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import ValidationError

from nextbest.config import CONFIG_FILES, DEFAULTS_DIR, NextbestConfig, Offer, load_config
from nextbest.errors import BadInputError
from nextbest.tables import read_user_table

#: Columns every catalogue must have.
REQUIRED_COLUMNS: tuple[str, ...] = ("id", "category", "stage", "value", "margin", "channels")
#: Columns a catalogue may have; a missing one takes the offer's default.
OPTIONAL_COLUMNS: tuple[str, ...] = (
    "name", "lever", "rule", "segment", "valid_from", "valid_to", "max_contacts", "message",
)
#: Other names accepted for a column (the config's own field name).
ALIASES: Mapping[str, str] = {"eligibility": "rule"}
#: Column name -> field of :class:`~nextbest.config.Offer`.
FIELDS: Mapping[str, str] = {"rule": "eligibility"}
#: How a ``channels`` cell separates channel ids (``email|sms``, ``email; sms``, ``email, sms``).
CHANNEL_SEPARATORS = re.compile(r"[|;,]")
#: How many bad rows an error lists before summarising the rest.
MAX_LISTED = 25

#: libyaml's emitter when PyYAML has it (a thousand offers: ~0.3 s instead of ~5 s).
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

Mode = Literal["add", "update", "replace"]
MODES: tuple[str, ...] = ("add", "update", "replace")

_HINTS: Mapping[str, str] = {
    "id": "use lower-case letters, digits and _, starting with a letter (e.g. 'spring_sale')",
}


@dataclass(frozen=True)
class CatalogueImport:
    """What an import did (or, with ``dry_run``, would do).

    Attributes
    ----------
    path
        The ``offers.yaml`` written.
    offers
        The whole catalogue after the import, in file order.
    added, updated, removed
        Offer ids the import added, overwrote and (``replace``) dropped.
    written
        Whether ``offers.yaml`` was replaced (``False`` for a dry run).
    """

    path: Path
    offers: tuple[Offer, ...]
    added: tuple[str, ...]
    updated: tuple[str, ...]
    removed: tuple[str, ...]
    written: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path), "offers": len(self.offers), "added": list(self.added),
            "updated": list(self.updated), "removed": list(self.removed), "written": self.written,
        }


# --------------------------------------------------------------------------- reading
def read_catalogue(path: Path) -> pd.DataFrame:
    """Read a catalogue file: CSV cells as text, Parquet cells as stored.

    Raises
    ------
    BadInputError
        The file is missing, not CSV/Parquet, or unreadable.
    """
    return read_user_table(path, "the catalogue")


def _missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def _cell(value: Any) -> Any:
    """A cell as pydantic should see it: text stripped, numpy scalars as Python, timestamps as dates."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, pd.Timestamp | np.datetime64):
        return pd.Timestamp(value).date()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _channels(value: Any) -> Any:
    if isinstance(value, str):
        return tuple(c.strip() for c in CHANNEL_SEPARATORS.split(value) if c.strip())
    if isinstance(value, np.ndarray | list | tuple):
        return tuple(str(c).strip() for c in value)
    return value


def check_columns(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """The frame with aliased columns renamed; refuses missing, unknown or repeated columns."""
    known = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
    renamed = frame.rename(columns=dict(ALIASES))
    columns = list(renamed.columns)
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise BadInputError(
            f"{source}: column(s) {', '.join(repeated)} appear more than once "
            f"(rule and eligibility are one column); keep one of each"
        )
    unknown = [c for c in frame.columns if ALIASES.get(c, c) not in known]
    if unknown:
        hints = []
        for c in unknown:
            close = difflib.get_close_matches(c.lower(), known + tuple(ALIASES), n=1)
            hints.append(f"{c!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise BadInputError(
            f"{source}: unknown column(s) {', '.join(hints)}; a catalogue has the columns "
            f"{', '.join(REQUIRED_COLUMNS)} and optionally {', '.join(OPTIONAL_COLUMNS)}"
        )
    absent = [c for c in REQUIRED_COLUMNS if c not in columns]
    if absent:
        raise BadInputError(
            f"{source}: missing required column(s) {', '.join(absent)}; add them "
            f"(a catalogue needs {', '.join(REQUIRED_COLUMNS)})"
        )
    if renamed.empty:
        raise BadInputError(f"{source}: the catalogue has no rows; export at least one offer")
    return renamed


# --------------------------------------------------------------------------- validating rows
def _pydantic_errors(row: int, exc: ValidationError, raw: Mapping[str, Any]) -> list[str]:
    out = []
    columns = {v: k for k, v in FIELDS.items()}
    for err in exc.errors():
        loc = err["loc"]
        if not loc:  # the model-level check: validity dates
            message = str(err["msg"]).removeprefix("Value error, ")
            out.append(f"row {row}, valid_to: {message}; make valid_to the same day as valid_from or later")
            continue
        column = columns.get(str(loc[0]), str(loc[0]))
        if err["type"] == "missing":
            out.append(f"row {row}, {column}: missing value; fill it in (required)")
            continue
        got = raw.get(column, err.get("input"))
        message = f"row {row}, {column}: {err['msg']} (got {got!r})"
        if column in _HINTS and err["type"] == "string_pattern_mismatch":
            message += f"; {_HINTS[column]}"
        out.append(message)
    return out


def _row_offer(row: int, record: Mapping[str, Any], config: NextbestConfig, known: frozenset[str] | None) -> tuple[Offer | None, list[str]]:
    from nextbest.decisioning.rules import RuleError, check_names, parse_rule

    raw = {c: _cell(v) for c, v in record.items() if not _missing(v)}
    fields = {FIELDS.get(c, c): v for c, v in raw.items()}
    if "channels" in fields:
        fields["channels"] = _channels(fields["channels"])
    if "id" in fields and "name" not in fields:
        fields["name"] = str(fields["id"])
    for key in ("id", "name", "category", "segment", "message", "eligibility"):
        if key in fields and not isinstance(fields[key], str):
            fields[key] = str(fields[key])
    try:
        offer = Offer.model_validate(fields)
    except ValidationError as exc:
        return None, _pydantic_errors(row, exc, raw)
    errors = []
    channel_ids = [c.id for c in config.channels.channels]
    for ch in offer.channels:
        if ch not in channel_ids:
            close = difflib.get_close_matches(ch, channel_ids, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            errors.append(f"row {row}, channels: unknown channel {ch!r}; {hint}known: {', '.join(channel_ids)} (channels.yaml)")
    if len(set(offer.channels)) != len(offer.channels):
        errors.append(f"row {row}, channels: a channel is listed twice ({', '.join(offer.channels)}); list each once")
    segments = [s.name for s in config.policy.segments]
    if offer.segment is not None and offer.segment not in segments:
        errors.append(
            f"row {row}, segment: unknown segment {offer.segment!r}; define it in policy.yaml segments "
            f"(defined: {', '.join(segments) or 'none'})"
        )
    if offer.eligibility is not None:
        where = f"row {row}, rule"
        try:
            rule = parse_rule(offer.eligibility, where=where)
            if known is not None:
                check_names(rule, known, where=where)
        except RuleError as exc:
            errors.append(str(exc))
    return (offer if not errors else None), errors


def parse_catalogue(frame: pd.DataFrame, config: NextbestConfig, source: str = "catalogue") -> tuple[Offer, ...]:
    """Validate every row of a catalogue frame into offers.

    Parameters
    ----------
    frame
        From :func:`read_catalogue`.
    config
        The workspace configuration: channels, segments and the features rules may read.
    source
        How the file is named in errors.

    Raises
    ------
    BadInputError
        Listing every bad row (``row N, column: problem; fix``); rows count from 1,
        the header not included (row N of a CSV is its line N + 1).
    """
    from nextbest.decisioning.ruleset import known_feature_names

    frame = check_columns(frame, source)
    known = known_feature_names(config)
    offers: list[Offer] = []
    errors: list[str] = []
    first_row: dict[str, int] = {}
    for i, record in enumerate(frame.to_dict(orient="records"), start=1):
        offer, problems = _row_offer(i, record, config, known)
        errors.extend(problems)
        if offer is None:
            continue
        if offer.id in first_row:
            errors.append(f"row {i}, id: {offer.id!r} is also row {first_row[offer.id]}; give each offer a unique id")
            continue
        first_row[offer.id] = i
        offers.append(offer)
    if errors:
        raise BadInputError(_listing(source, errors))
    return tuple(offers)


def _listing(source: str, errors: list[str]) -> str:
    bad_rows = {m.split(",", 1)[0] for m in errors}
    shown = errors[:MAX_LISTED]
    more = f"\n  ... and {len(errors) - MAX_LISTED} more" if len(errors) > MAX_LISTED else ""
    return (
        f"{source}: {len(bad_rows)} invalid row(s), nothing was written:\n  " + "\n  ".join(shown) + more
    )


# --------------------------------------------------------------------------- merging and writing
def merge(existing: Iterable[Offer], imported: Iterable[Offer], mode: Mode, rows: Mapping[str, int] | None = None,
          source: str = "catalogue") -> tuple[tuple[Offer, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """The catalogue after importing ``imported`` into ``existing``.

    Parameters
    ----------
    existing
        The configured offers.
    imported
        The file's offers, validated.
    mode
        ``add``, ``update`` or ``replace`` (see the module docstring).
    rows
        Offer id -> its row in the file, for messages.
    source
        How the file is named in messages.

    Returns
    -------
    offers, added, updated, removed
        ``add`` keeps the configured offers first, then the new ones; ``update``
        overwrites configured offers in place and appends the new ones; ``replace``
        is the file's catalogue alone.

    Raises
    ------
    BadInputError
        ``add`` with an id already configured (naming every clash and the two other modes).
    """
    if mode not in MODES:
        raise BadInputError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    existing = tuple(existing)
    imported = tuple(imported)
    old = {o.id: o for o in existing}
    new = {o.id: o for o in imported}
    if mode == "replace":
        removed = tuple(i for i in old if i not in new)
        return imported, tuple(i for i in new if i not in old), tuple(i for i in new if i in old), removed
    clashes = [i for i in new if i in old]
    if mode == "add" and clashes:
        where = rows or {}
        listed = ", ".join(f"{i!r} (row {where.get(i, '?')})" for i in clashes[:10])
        more = f" and {len(clashes) - 10} more" if len(clashes) > 10 else ""
        raise BadInputError(
            f"{source}: {len(clashes)} offer id(s) already in offers.yaml, nothing was written: {listed}{more}; "
            "pass --update to overwrite those offers with the file's rows, or --replace to make the file the "
            "whole catalogue"
        )
    merged = [new.get(o.id, o) for o in existing] + [o for o in imported if o.id not in old]
    return tuple(merged), tuple(i for i in new if i not in old), tuple(clashes), ()


def _plain(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def render_offers_yaml(offers: Iterable[Offer], header: str = "") -> str:
    """``offers.yaml`` text: the header comment, then one flow mapping per offer (defaults left out)."""
    lines = [header.rstrip("\n")] if header.strip() else []
    lines.append("offers:")
    for offer in offers:
        entry = offer.model_dump(exclude_defaults=True)
        # Keep the required fields even when they equal a default, in the model's field order.
        entry = {k: _plain(v) for k, v in offer.model_dump().items() if k in entry or Offer.model_fields[k].is_required()}
        text = yaml.dump(entry, Dumper=_DUMPER, default_flow_style=True, sort_keys=False, width=10**9, allow_unicode=True)
        lines.append(f"  - {text.strip()}")
    return "\n".join(lines) + "\n"


def header_of(path: Path) -> str:
    """The leading comment block of a YAML file (kept when the file is rewritten)."""
    source = path if path.exists() else DEFAULTS_DIR / path.name
    out = []
    for line in source.read_text().splitlines():
        if line.startswith("#") or (not line.strip() and out):
            out.append(line)
        else:
            break
    return "\n".join(out).rstrip() + "\n" if out else ""


def _validate_with_loader(config_dir: Path, text: str) -> NextbestConfig:
    """Load the whole configuration with ``text`` as offers.yaml, through the real loader."""
    with tempfile.TemporaryDirectory(prefix="nextbest-offers-") as tmp:
        tmp_dir = Path(tmp)
        for name in CONFIG_FILES:
            if name != "offers" and (config_dir / f"{name}.yaml").exists():
                shutil.copyfile(config_dir / f"{name}.yaml", tmp_dir / f"{name}.yaml")
        (tmp_dir / "offers.yaml").write_text(text)
        return load_config(tmp_dir)


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``: a temporary file in the same folder, fsynced, then renamed over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def import_catalogue(config_dir: Path, file: Path, *, mode: Mode = "add", dry_run: bool = False) -> CatalogueImport:
    """Validate a catalogue file and write the workspace's ``offers.yaml`` from it.

    Parameters
    ----------
    config_dir
        The workspace's ``config/`` folder.
    file
        CSV or Parquet, one offer a row (columns: :data:`REQUIRED_COLUMNS`, :data:`OPTIONAL_COLUMNS`).
    mode
        ``add`` (refuse ids already configured), ``update`` or ``replace``.
    dry_run
        Validate everything, write nothing.

    Raises
    ------
    BadInputError
        Any invalid row (all of them listed), an id clash in ``add`` mode, or a
        configuration the new catalogue would break (e.g. a trigger naming an offer
        ``replace`` drops). ``offers.yaml`` is then left as it was.
    """
    file = Path(file)
    config_dir = Path(config_dir)
    config = load_config(config_dir)  # the current one must be valid before anything is merged into it
    frame = read_catalogue(file)
    source = file.name
    imported = parse_catalogue(frame, config, source)
    rows: dict[str, int] = {}
    for i, v in enumerate(frame.rename(columns=dict(ALIASES))["id"], start=1):
        rows.setdefault(str(_cell(v)), i)
    offers, added, updated, removed = merge(config.offers.offers, imported, mode, rows, source)
    target = config_dir / "offers.yaml"
    text = render_offers_yaml(offers, header_of(target))
    try:
        loaded = _validate_with_loader(config_dir, text)
    except BadInputError as exc:
        # The loader names model-level errors "config: : Value error, ..."; the reason alone reads better here.
        reason = str(exc).replace("invalid configuration:\n  ", "").replace("config: : Value error, ", "")
        raise BadInputError(
            f"{source}: the catalogue would make the configuration invalid, nothing was written: {reason}; "
            "change the other config file first, or keep those offers in the catalogue"
        ) from None
    if loaded.offers.offers != offers:  # the text must say exactly what was validated
        raise AssertionError("offers.yaml does not round-trip; please report this")
    if not dry_run:
        write_atomically(target, text)
    return CatalogueImport(target, offers, added, updated, removed, not dry_run)


def template_frame(offers: Iterable[Offer]) -> pd.DataFrame:
    """Offers as a catalogue table (the columns :func:`read_catalogue` takes): an export of the current catalogue."""
    rows = []
    for o in offers:
        rows.append({
            "id": o.id, "name": o.name, "category": o.category, "stage": o.stage, "value": o.value,
            "margin": o.margin, "channels": "|".join(o.channels), "lever": o.lever, "rule": o.eligibility,
            "segment": o.segment, "valid_from": o.valid_from, "valid_to": o.valid_to,
            "max_contacts": o.max_contacts, "message": o.message,
        })
    return pd.DataFrame(rows, columns=list(REQUIRED_COLUMNS + OPTIONAL_COLUMNS))


__all__ = [
    "CatalogueImport", "MODES", "OPTIONAL_COLUMNS", "REQUIRED_COLUMNS", "import_catalogue", "merge",
    "parse_catalogue", "read_catalogue", "render_offers_yaml", "template_frame", "write_atomically",
]
