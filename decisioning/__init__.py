"""nextbest.decisioning."""
