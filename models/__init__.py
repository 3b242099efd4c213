"""nextbest.models."""
