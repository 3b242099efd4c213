"""nextbest.world."""
