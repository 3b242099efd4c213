"""The contract between models and decisioning.

Decisioning never touches LightGBM directly: it hands a frame of *candidate rows*
to a :class:`Scorer` and reads probabilities back. The trained champion (loaded
from the MLflow registry) implements it; so does any other policy's model.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import pandas as pd

#: Columns a scorer returns, aligned with the candidates' index.
SCORE_COLUMNS: tuple[str, ...] = ("p_contact", "p_control", "uplift", "value")


@runtime_checkable
class Scorer(Protocol):
    """Scores candidate (customer, offer, channel) rows.

    ``candidates`` has one row per candidate with ``customer_id``, ``offer_id``,
    ``channel`` and the customer's feature columns (the feature registry's model
    features, as of the decision time, plus offer-history features).
    """

    #: Registry version (e.g. ``"nextbest-response/3"``), logged with every decision.
    model_version: str

    def score(self, candidates: pd.DataFrame) -> pd.DataFrame:
        """Return ``p_contact`` = P(response | contacted), ``p_control`` =
        P(response | not contacted), ``uplift`` = p_contact - p_control, and
        ``value`` = expected value of a response (revenue or margin), indexed like
        ``candidates``."""
        ...

    def reasons(self, candidates: pd.DataFrame, top: int = 3) -> list[list[str]]:
        """Top feature contributions per row as reason codes, e.g.
        ``["engagement_score:+0.41", "recency_days:-0.12"]`` (LightGBM ``pred_contrib``)."""
        ...
