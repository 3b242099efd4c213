"""Scoring candidate rows as one float matrix, without a candidate DataFrame.

A candidate row is a customer's features plus a few columns that depend on the
(offer, channel) pair: ``offer_id``, ``channel``, the offer-history columns, the
:class:`~nextbest.models.context.OfferContext` columns and the treatment flag.
:meth:`ResponseModel.score <nextbest.models.response.ResponseModel.score>` builds
that frame row by row and encodes it; for a single customer with ~80 candidate
pairs the pandas work costs a hundred times the LightGBM call.

:class:`CandidateMatrix` splits the work along that line: :meth:`~CandidateMatrix.encode`
turns customers into encoded rows once (the scoring service does it once per
feature snapshot), and :meth:`~CandidateMatrix.score` gathers a row per
candidate, writes the pair's columns into it and calls the booster once for
both treatment arms. The encoder, booster and calibration map are the model's
own, so the probabilities and reason codes equal the DataFrame path's;
``tests/decisioning/test_matrix_scoring.py`` checks it on generated workspaces.

Only the model shapes it knows are taken (an S-learner over a LightGBM
estimator with a :class:`~nextbest.models.encoding.FrameEncoder`, with or
without an ``OfferContext``): :meth:`CandidateMatrix.of` returns ``None`` for any
other scorer, which the engine then scores through its DataFrame.

A long-lived process (the scoring service) may also :meth:`~CandidateMatrix.compile`
the booster to native code with ``lleaves`` (:class:`CompiledForest`): the same
trees, evaluated without LightGBM's per-call overhead, ~5x faster for the few
hundred rows of a request. Probabilities agree with LightGBM's to ~1e-15 (the
tree outputs are summed in another order); compiling checks that on sample rows
and keeps LightGBM when they do not. Reason codes (``pred_contrib``, TreeSHAP)
always come from LightGBM.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from nextbest.models.context import OfferContext
from nextbest.models.encoding import with_columns
from nextbest.models.response import ResponseModel
from nextbest.models.uplift import SLearner

log = logging.getLogger(__name__)

#: Largest difference from LightGBM's probability a compiled forest may show on the check rows.
COMPILED_TOLERANCE = 1e-12
#: Objectives whose output transform lleaves reproduces as LightGBM applies it.
_COMPILABLE_OBJECTIVES = ("binary", "regression")

#: Up to this many candidate rows, both treatment arms go through one booster call.
_STACK_ROWS = 4096
#: Candidate rows gathered per block: bounds the (rows x features) matrices of a large batch.
_BLOCK_ROWS = 65_536


@dataclass(frozen=True)
class EncodedCustomers:
    """Customers encoded for one model: what every candidate row of theirs starts from.

    Attributes
    ----------
    matrix
        (n, F) encoded customer features in the model's column order; the
        candidate columns hold placeholders that scoring overwrites.
    derived
        OfferContext column → (n, O) value per customer and offer (config order).
    """

    matrix: np.ndarray
    derived: dict[str, np.ndarray]

    def take(self, positions: np.ndarray) -> EncodedCustomers:
        """The customers at ``positions`` (repeats allowed)."""
        return EncodedCustomers(self.matrix[positions], {c: v[positions] for c, v in self.derived.items()})

    @classmethod
    def concat(cls, parts: Sequence[EncodedCustomers]) -> EncodedCustomers:
        """The customers of ``parts`` one after the other."""
        return cls(
            np.concatenate([p.matrix for p in parts]),
            {c: np.concatenate([p.derived[c] for p in parts]) for c in parts[0].derived},
        )


def reason_codes(contrib: np.ndarray, names: np.ndarray, top: int) -> list[list[str]]:
    """Top ``top`` contributions by magnitude per row, as ``"feature:+0.41"`` (zeros left out).

    ``contrib`` holds one column per name in ``names`` (no bias, no treatment),
    as :meth:`ResponseModel.reasons <nextbest.models.response.ResponseModel.reasons>` ranks them.
    """
    k = min(top, contrib.shape[1])
    order = np.argsort(-np.abs(contrib), axis=1, kind="stable")[:, :k]
    picked = np.take_along_axis(contrib, order, axis=1)
    return [
        [f"{names[j]}:{v:+.2f}" for j, v in zip(row_idx, row_val, strict=True) if v != 0.0]
        for row_idx, row_val in zip(order.tolist(), picked.tolist(), strict=True)
    ]


class CompiledForest:
    """A LightGBM booster compiled to native code by ``lleaves``; build with :meth:`build`.

    Parameters
    ----------
    model
        The compiled ``lleaves.Model``.
    """

    def __init__(self, model: Any) -> None:
        self.model = model

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        """What ``Booster.predict(matrix)`` gives (probability for a binary objective), in this thread."""
        # One thread: a request's few hundred rows are done before a pool would have started.
        return self.model.predict(matrix, n_jobs=1)  # type: ignore[no-any-return]

    @classmethod
    def build(cls, booster: lgb.Booster, num_iteration: int | None, cache_dir: Path | None = None) -> CompiledForest:
        """Compile ``booster``'s first ``num_iteration`` iterations (all when ``None``).

        ``cache_dir`` keeps the object code, named by a hash of the model text, the
        compiler versions and this host's CPU, so the next start (or another worker)
        loads it instead of compiling for seconds.

        Raises
        ------
        ImportError
            When ``lleaves`` (or its ``llvmlite``) is not installed.
        ValueError
            When the objective is not one lleaves reproduces.
        """
        import lleaves  # noqa: PLC0415 - optional, and llvmlite takes a while to import
        import llvmlite.binding as llvm  # noqa: PLC0415

        objective = str(booster.params.get("objective", ""))
        if objective not in _COMPILABLE_OBJECTIVES:
            raise ValueError(f"objective {objective!r} is not compiled; LightGBM predicts it")
        text = booster.model_to_string(num_iteration=num_iteration)
        with tempfile.TemporaryDirectory(prefix="nextbest-forest-") as tmp:
            model_file = Path(tmp) / "model.txt"
            model_file.write_text(text)
            model = lleaves.Model(model_file=str(model_file))
            cache = None
            if cache_dir is not None:
                llvm.initialize()
                llvm.initialize_native_target()
                try:
                    features = llvm.get_host_cpu_features().flatten()
                except RuntimeError:
                    features = ""
                # Object code is native to this CPU and compiler: all of them name the file.
                key = "\n".join([
                    text, metadata.version("lleaves"), metadata.version("llvmlite"), platform.machine(),
                    llvm.get_process_triple(), llvm.get_host_cpu_name(), features,
                ])
                cache = cache_dir / f"forest-{hashlib.sha256(key.encode()).hexdigest()[:24]}.o"
            if cache is not None and cache.exists():
                model.compile(cache=str(cache))
            elif cache is not None:
                cache_dir.mkdir(parents=True, exist_ok=True)  # type: ignore[union-attr]
                # Written under a private name and renamed: another worker may be loading it meanwhile.
                partial = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
                model.compile(cache=str(partial))
                os.replace(partial, cache)
            else:
                model.compile()
        return cls(model)


class CandidateMatrix:
    """Matrix-level scoring of one :class:`ResponseModel`; build with :meth:`of`.

    Parameters
    ----------
    model
        A fitted response model with an S-learner over an encoded LightGBM estimator.
    offer_ids, channel_ids
        Offers and channels in config order (candidate rows name them by position).
    """

    def __init__(self, model: ResponseModel, offer_ids: Sequence[str], channel_ids: Sequence[str]) -> None:
        learner: SLearner = model.learner_
        self.model = model
        self.estimator = learner.estimator_
        self.calibrator = model.calibrator_
        self.context: OfferContext | None = getattr(model, "context_", None)
        encoder = self.estimator.encoder_
        self.encoder = encoder
        names = [str(c) for c in encoder.feature_names_in_]
        self.names = names
        self.offer_ids = list(offer_ids)
        self.n_channels = len(channel_ids)
        position = {c: i for i, c in enumerate(names)}
        self.treatment = position[learner.treatment_column]
        # Bundles saved before treatment_features existed lack the attribute.
        masked = getattr(learner, "treatment_features", ())
        self.masked = np.array([position[c] for c in masked if c in position], dtype=np.int64)
        levels = encoder._levels()

        def codes(column: str, ids: Sequence[str]) -> np.ndarray | None:
            if column not in position:
                return None
            if column in levels:
                c = levels[column].codes(np.asarray(list(ids), dtype=object))
                return np.where(c < 0, np.nan, c).astype(float)
            return None

        self.offer_col = position.get("offer_id")
        self.channel_col = position.get("channel")
        self.offer_code = codes("offer_id", offer_ids)
        self.channel_code = codes("channel", channel_ids)
        self.derived_cols = {c: position[c] for c in (self.context.outputs_ if self.context is not None else ()) if c in position}
        self.position = position
        # Contributions: every column but the treatment, as SLearner.predict_contrib drops it.
        self.contrib_keep = np.array([i for i in range(len(names)) if i != self.treatment], dtype=np.int64)
        self.contrib_names = np.array([names[i] for i in self.contrib_keep], dtype=object)
        #: Set by :meth:`compile`; ``None`` = LightGBM predicts.
        self.compiled: CompiledForest | None = None

    @classmethod
    def of(cls, scorer: object, offer_ids: Sequence[str], channel_ids: Sequence[str]) -> CandidateMatrix | None:
        """The matrix scorer of ``scorer``, or ``None`` when its shape is not one this module reproduces."""
        if type(scorer) is not ResponseModel:
            return None
        learner = getattr(scorer, "learner_", None)
        if type(learner) is not SLearner:
            return None
        estimator = getattr(learner, "estimator_", None)
        encoder = getattr(estimator, "encoder_", None)
        if encoder is None or not hasattr(estimator, "predict_matrix") or not hasattr(encoder, "_levels"):
            return None
        context = getattr(scorer, "context_", None)
        # offer_table derives every output transform does (one derivation), so any OfferContext will do.
        if context is not None and type(context) is not OfferContext:
            return None
        names = set(map(str, encoder.feature_names_in_))
        if learner.treatment_column not in names:
            return None
        for column in ("offer_id", "channel"):
            # A pair column the encoder reads as a number would need the DataFrame's conversion.
            if column in names and column not in encoder.categories_:
                return None
        return cls(scorer, offer_ids, channel_ids)

    def compile(self, check: EncodedCustomers, cache_dir: Path | None = None, check_rows: int = 2000) -> bool:
        """Predict through a :class:`CompiledForest` from now on, if it matches LightGBM on ``check``.

        The check scores candidate rows of the first customers of ``check`` (every
        offer and channel, both treatment arms) both ways; beyond
        :data:`COMPILED_TOLERANCE` apart, or when lleaves is missing or fails, the
        booster stays LightGBM's and a warning says why.

        Returns
        -------
        bool
            Whether the compiled forest is now in use.
        """
        booster = self.estimator.booster_
        try:
            forest = CompiledForest.build(booster, booster.best_iteration or None, cache_dir)
        except Exception as exc:  # noqa: BLE001 - any failure leaves LightGBM predicting, as before
            log.warning("tree model not compiled (%s: %s); LightGBM predicts", type(exc).__name__, exc)
            return False
        n_pairs = max(len(self.offer_ids) * self.n_channels, 1)
        k = max(1, min(len(check.matrix), check_rows // n_pairs))
        cust = np.repeat(np.arange(k), n_pairs)
        pair = np.tile(np.arange(n_pairs), k)
        rows = self.candidate_rows(check, cust, pair // self.n_channels, pair % self.n_channels, {})
        both = self._stack_arms(rows)
        gap = float(np.max(np.abs(forest.predict(both) - self.estimator.predict_matrix(both))))
        if not gap <= COMPILED_TOLERANCE:
            log.warning("compiled tree model differs from LightGBM by %.3g; LightGBM predicts", gap)
            return False
        self.compiled = forest
        return True

    def _predict(self, matrix: np.ndarray) -> np.ndarray:
        return self.compiled.predict(matrix) if self.compiled is not None else self.estimator.predict_matrix(matrix)

    # ------------------------------------------------------------------ customers
    def pair_columns(self, offer_history_columns: Sequence[str]) -> list[str]:
        """Columns a candidate row takes from its pair rather than its customer."""
        pair = ["offer_id", "channel", self.names[self.treatment], *self.derived_cols, *offer_history_columns]
        return [c for c in dict.fromkeys(pair) if c in self.position]

    def encode(self, features: pd.DataFrame, offer_history_columns: Sequence[str] = ()) -> EncodedCustomers:
        """Encode customer feature rows (``customer_id`` + features, as the engine gets them).

        ``offer_history_columns`` are the offer-history columns candidate rows will
        carry (they then override a customer column of the same name, as in the
        engine's candidate frame).
        """
        n = len(features)
        placeholders = {c: np.full(n, np.nan) for c in self.pair_columns(offer_history_columns)}
        # The encoder reads every model column by name: the pair's get NaN here and their values per row.
        frame = with_columns(features.drop(columns=[c for c in placeholders if c in features.columns]), placeholders)
        matrix = self.encoder.transform(frame)
        derived = self.context.offer_table(features, self.offer_ids) if self.context is not None else {}
        return EncodedCustomers(matrix, {c: derived[c] for c in self.derived_cols})

    # ------------------------------------------------------------------ candidates
    def candidate_rows(
        self, customers: EncodedCustomers, cust: np.ndarray, offer: np.ndarray, channel: np.ndarray,
        offer_history: Mapping[str, np.ndarray],
    ) -> np.ndarray:
        """Encoded candidate rows, contacted: customer ``cust`` with pair ``(offer, channel)``.

        ``offer_history`` maps offer-history columns to their value per row.
        """
        m = customers.matrix[cust]
        if self.offer_col is not None and self.offer_code is not None:
            m[:, self.offer_col] = self.offer_code[offer]
        if self.channel_col is not None and self.channel_code is not None:
            m[:, self.channel_col] = self.channel_code[channel]
        for column, i in self.derived_cols.items():
            m[:, i] = customers.derived[column][cust, offer]
        for column, values in offer_history.items():
            i = self.position.get(column)
            if i is not None:
                m[:, i] = values
        m[:, self.treatment] = 1.0
        return m

    def score(
        self, customers: EncodedCustomers, cust: np.ndarray, offer: np.ndarray, channel: np.ndarray,
        offer_history: Mapping[str, np.ndarray],
    ) -> tuple[np.ndarray, np.ndarray]:
        """Calibrated ``(p_contact, uplift)`` per candidate row (see :meth:`candidate_rows`)."""
        n = len(cust)
        p1, p0 = np.empty(n), np.empty(n)
        for start in range(0, n, _BLOCK_ROWS):
            rows = slice(start, min(start + _BLOCK_ROWS, n))
            history = {c: v[rows] for c, v in offer_history.items()}
            m = self.candidate_rows(customers, cust[rows], offer[rows], channel[rows], history)
            # The calibration map is elementwise: one call maps both arms.
            both = self.calibrator.transform(self._both_arms(m))
            k = len(m)
            p1[rows], p0[rows] = both[:k], both[k:]
        return p1, p1 - p0

    def _stack_arms(self, matrix: np.ndarray) -> np.ndarray:
        """``matrix`` (contacted rows) above its copy as not contacted: one booster call for both arms."""
        n = len(matrix)
        both = np.concatenate([matrix, matrix])
        both[n:, self.treatment] = 0.0
        both[n:, self.masked] = np.nan
        return both

    def _both_arms(self, matrix: np.ndarray) -> np.ndarray:
        """Raw predictions of ``matrix`` contacted, then not contacted (one array of twice its rows)."""
        if len(matrix) <= _STACK_ROWS:
            return self._predict(self._stack_arms(matrix))
        p1 = self._predict(matrix)
        matrix[:, self.treatment] = 0.0
        matrix[:, self.masked] = np.nan
        return np.concatenate([p1, self._predict(matrix)])

    def reasons(
        self, customers: EncodedCustomers, cust: np.ndarray, offer: np.ndarray, channel: np.ndarray,
        offer_history: Mapping[str, np.ndarray], top: int = 3,
    ) -> list[list[str]]:
        """Reason codes of candidate rows, as :meth:`ResponseModel.reasons` gives them (one booster call)."""
        if len(cust) == 0:
            return []
        m = self.candidate_rows(customers, cust, offer, channel, offer_history)
        contrib = self.estimator.predict_matrix(m, pred_contrib=True)
        return reason_codes(contrib[:, self.contrib_keep], self.contrib_names, top)
