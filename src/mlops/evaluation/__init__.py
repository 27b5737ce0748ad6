"""Evaluation: metrics on the held-out test set, the gate that blesses or refuses a candidate, and the report."""
