"""nextbest.decisioning: from scored candidates to the next best action.

Modules
-------
rules, ruleset   the safe rule language of eligibility, segments and trigger conditions
candidates       candidate (offer, channel) pairs and the rules that suppress them
history          contact history from the decision log (caps, cool-downs, suppressions)
selection        exploration with logged propensities; capacity allocation
hashing          deterministic per-customer uniforms (experiment arms, exploration draws)
engine           :class:`DecisionEngine` - ``decide`` (batch frames) and ``rank`` (documents)
documents        ``RankRequest`` / ``RankResponse`` / ``Action`` / ``Suppressed``: the JSON contract
log              rows for the ``decisions`` table and a lock-tolerant writer
segments         segment membership, profiles and reachable-only exports
campaign         budgeted campaign planning with a MILP and its optimality gap
synthetic        registry-shaped random feature frames for property tests and benchmarks
"""
