"""Rollout of a blessed candidate: declared policy, traffic drivers, analysis and the controller."""
