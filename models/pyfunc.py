"""The MLflow ``pyfunc`` face of a :class:`ResponseModel`.

The logged model carries the bundle as an artifact folder (``scorer/``: JSON +
LightGBM text files, see :mod:`nextbest.models.persistence`). Through MLflow,
``mlflow.pyfunc.load_model(uri).predict(candidates)`` returns the score
columns; nextbest itself loads the folder directly (:func:`nextbest.models.registry.load_scorer`),
which skips MLflow's environment checks and is much faster.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from mlflow.models import ModelSignature
from mlflow.pyfunc import PythonModel, PythonModelContext
from mlflow.types import ColSpec, Schema

from nextbest.models.scoring import SCORE_COLUMNS

#: Name of the bundle folder inside the logged model's artifacts.
SCORER_ARTIFACT = "scorer"


class ResponseModelPyfunc(PythonModel):
    """``predict(candidates) -> DataFrame[p_contact, p_control, uplift, value]``."""

    def load_context(self, context: PythonModelContext) -> None:
        from nextbest.models.response import ResponseModel

        self.model = ResponseModel.load(context.artifacts[SCORER_ARTIFACT])

    def predict(self, context: PythonModelContext, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        return self.model.score(model_input)


def signature_for(feature_frame: pd.DataFrame, categorical: tuple[str, ...]) -> ModelSignature:
    """Input schema: ``offer_id``/``channel``/categorical features as strings, every other feature a double.

    Numeric features are declared ``double`` (not their training dtype) so that an
    integer count arriving with a null, or a boolean, is accepted and converted
    rather than rejected by MLflow's schema enforcement. Offer-history columns
    are optional: a candidate never shown the offer may omit them.
    """
    specs = []
    for name in feature_frame.columns:
        kind = "string" if name in categorical else "double"
        specs.append(ColSpec(kind, name, required=True))
    outputs = Schema([ColSpec("double", c) for c in SCORE_COLUMNS])
    return ModelSignature(inputs=Schema(specs), outputs=outputs)


def input_example_for(feature_frame: pd.DataFrame, categorical: tuple[str, ...]) -> pd.DataFrame:
    """One typical candidate, in the signature's types: each numeric feature's median, each categorical's mode.

    An aggregate rather than a row of the training set, so the logged model holds
    no customer's data; MLflow validates it against the signature when logging.
    """
    row: dict[str, object] = {}
    for name in feature_frame.columns:
        column = feature_frame[name]
        if name in categorical:
            mode = column.dropna().astype(str).mode()
            row[name] = str(mode.iloc[0]) if len(mode) else ""
        else:
            median = pd.to_numeric(column, errors="coerce").astype("float64").median()
            row[name] = 0.0 if pd.isna(median) else float(median)
    return pd.DataFrame([row])
