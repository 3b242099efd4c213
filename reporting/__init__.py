"""nextbest.reporting."""
