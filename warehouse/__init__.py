"""nextbest.warehouse."""
