"""Declared customer attributes (``features.yaml`` ``attributes``) as features.

Each non-personal attribute is read from the customer row ``c`` under its own
name; a date attribute becomes the days from the date to the as-of time. Like
the other profile columns, an attribute is the customer's *current* value (the
``customers`` table keeps no history): declare only attributes whose value at
decision time is what the file says, not one that records a later outcome.
"""

from __future__ import annotations

from nextbest.features.pit import AS_OF
from nextbest.features.query import GroupQuery

from nextbest.config import NextbestConfig


def query(config: NextbestConfig) -> GroupQuery:
    """The attribute columns as expressions over the customer row."""
    derived = {}
    for a in config.features.attributes:
        if a.personal:
            continue
        column = f'c."{a.name}"'
        derived[a.name] = (
            f"date_diff('millisecond', CAST({column} AS TIMESTAMP), {AS_OF}) / 86400000.0"
            if a.type == "date" else column
        )
    return GroupQuery(derived=derived)
