"""nextbest.features."""
