"""Moved to :mod:`nextbest.reporting.policy_eval` (off-policy evaluation is reporting).

This module keeps the documented import path ``nextbest.policy_eval`` working;
import from :mod:`nextbest.reporting.policy_eval` in new code.
"""

from __future__ import annotations

from nextbest.reporting.policy_eval import (  # noqa: F401 - re-exported from the old path
    METRICS,
    MODEL_POLICY,
    NOBODY,
    RANDOM,
    PolicyEvaluation,
    action_costs,
    baseline_policies,
    candidate_pairs,
    evaluate,
    evaluate_experiment,
    held_out,
    incremental_values,
    load_logged,
    model_choice,
    model_rows,
    verdict,
)
