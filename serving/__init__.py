"""nextbest.serving."""
