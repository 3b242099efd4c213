"""Declared customer attributes in the warehouse: their columns of ``customers``.

``features.yaml`` ``attributes`` declares the business's own customer columns
(see :class:`nextbest.config.Attribute`). Their ``customers`` columns are added
when the configuration first meets the warehouse (an import, a feature build).
The type of a column holding data is never changed behind the user's back: a
declaration whose type no longer matches loaded values is an error naming the fix.
"""

from __future__ import annotations

from collections.abc import Iterable

import duckdb
from nextbest.warehouse.schema import CUSTOMERS, Column, Table

from nextbest.config import Attribute, NextbestConfig
from nextbest.errors import BadInputError

#: DuckDB type of each attribute type.
SQL_TYPES: dict[str, str] = {"number": "DOUBLE", "category": "VARCHAR", "boolean": "BOOLEAN", "date": "DATE"}
#: The attribute type a stored column type was declared as.
DECLARED_AS: dict[str, str] = {v: k for k, v in SQL_TYPES.items()}


def attribute_column(attribute: Attribute) -> Column:
    """The ``customers`` column of a declared attribute."""
    unknown = "category 'unknown'" if attribute.type == "category" else "null (unknown)"
    if attribute.personal:
        unknown = "none"
    doc = attribute.description or f"Declared {attribute.type} attribute (features.yaml)."
    return Column(attribute.name, SQL_TYPES[attribute.type], doc, unknown=unknown, declared_personal=attribute.personal)


def customers_table(config: NextbestConfig) -> Table:
    """The ``customers`` contract with the declared attributes appended."""
    extra = tuple(attribute_column(a) for a in config.features.attributes)
    if not extra:
        return CUSTOMERS
    return Table(
        name=CUSTOMERS.name, doc=CUSTOMERS.doc, columns=CUSTOMERS.columns + extra, key=CUSTOMERS.key,
        customer_fk=CUSTOMERS.customer_fk, importable=CUSTOMERS.importable, extra=CUSTOMERS.extra,
        foreign_keys=CUSTOMERS.foreign_keys,
    )


def personal_attributes(config: NextbestConfig) -> frozenset[str]:
    """Names of the attributes declared ``personal: true``."""
    return frozenset(a.name for a in config.features.attributes if a.personal)


def _stored_types(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    rows = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'main' AND table_name = 'customers'"
    ).fetchall()
    return {name: typ for name, typ in rows}


def ensure_attribute_columns(con: duckdb.DuckDBPyConnection, config: NextbestConfig) -> list[str]:
    """Add the ``customers`` column of every declared attribute that has none yet.

    A column whose type differs from the declaration is converted only while it
    holds no value at all; with values loaded, changing the declared type is an
    error that names the fix.

    Returns
    -------
    list of str
        The columns added or converted.

    Raises
    ------
    BadInputError
        A declared type contradicts loaded data, or the connection is read-only
        and a column is missing.
    """
    stored = _stored_types(con)
    if not stored:  # no customers table yet: connect() creates it on a writable connection
        return []
    changed = []
    for a in config.features.attributes:
        want = SQL_TYPES[a.type]
        have = stored.get(a.name)
        if have == want:
            continue
        if have is not None:
            loaded = con.execute(f'SELECT count("{a.name}") FROM customers').fetchone()[0]
            if loaded:
                before = DECLARED_AS.get(have, have)
                raise BadInputError(
                    f"features.yaml: attribute {a.name!r} is declared type {a.type}, but customers already holds "
                    f"{loaded:,} {a.name} value(s) of type {before} ({have}). Fix: declare it `type: {before}` "
                    f"again, or declare the new type under a new name (e.g. {a.name}_{a.type}) and import the "
                    "column under that name; the loaded values stay where they are"
                )
        try:
            if have is None:
                con.execute(f'ALTER TABLE customers ADD COLUMN "{a.name}" {want}')
            else:
                con.execute(f'ALTER TABLE customers ALTER COLUMN "{a.name}" SET DATA TYPE {want}')
        except duckdb.Error as exc:
            raise BadInputError(
                f"features.yaml declares attribute {a.name!r}, which the warehouse's customers table does not "
                f"hold as {want} yet, and this connection cannot add it ({str(exc).splitlines()[0]}). Fix: run "
                "`nextbest features build` or `nextbest data import` once, which add the declared columns"
            ) from exc
        changed.append(a.name)
    return changed


def check_names(names: Iterable[str], config: NextbestConfig, *, what: str) -> None:
    """Refuse personal attributes in ``names`` (model inputs, MLflow params and artifacts)."""
    found = sorted(set(map(str, names)) & personal_attributes(config))
    if found:
        raise BadInputError(
            f"{what} include personal attribute(s) {found} (features.yaml `personal: true`); they may never "
            "be model inputs or leave the warehouse"
        )
