"""nextbest.simulation."""
