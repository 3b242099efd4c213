"""nextbest.simulation: the closed loop on a synthetic world, and the end-to-end demo.

* :func:`~nextbest.simulation.runner.simulate` runs policies (the champion, a
  challenger, rules, random, the oracle, no contact, or the configured A/B
  experiment) on paired copies of a generated world for N days, through the real
  decision engine (or the real HTTP service), and books revenue, incremental
  profit against ``none``, regret against the oracle and audited violations.
* :func:`~nextbest.simulation.demo.run_demo` is ``nextbest demo``.
"""
