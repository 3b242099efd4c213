"""nextbest.decisioning: from scored candidates to the next best action.

Modules
-------
rules, ruleset   the safe rule language of eligibility, segments and trigger conditions
candidates       candidate (offer, channel) pairs and the rules that suppress them
history          contact history from the decision log (caps, cool-downs, suppressions)
prepared         customers prepared for deciding (feature rows as arrays, offer history, reason memo)
scoring          experiment arms; surviving candidates scored and valued (expected value)
selection        exploration with logged propensities; capacity allocation; ranked actions
reasons          reason codes of actions, the rule behind each suppressed candidate
responses        a decided batch as ``decisions``/actions frames and ``RankResponse`` documents
plans            per-customer plans: a customer ranked from what no contact changes
hashing          deterministic per-customer uniforms (experiment arms, exploration draws)
engine           :class:`DecisionEngine` - ``decide`` (batch frames) and ``rank`` (documents)
documents        ``RankRequest`` / ``RankResponse`` / ``Action`` / ``Suppressed``: the JSON contract
log              rows for the ``decisions`` table and a lock-tolerant writer
segments         segment membership, profiles and reachable-only exports
campaign         budgeted campaign planning with a MILP and its optimality gap
synthetic        registry-shaped random feature frames for property tests and benchmarks
"""
