"""Supervised runs: the pure decisions and the loop (local or in Lambda) that applies them."""
