"""nextbest: open-source next-best-action decisioning."""
__version__ = "0.1.0"
