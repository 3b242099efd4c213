"""nextbest.training."""
