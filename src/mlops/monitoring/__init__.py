"""Monitoring: reference profiles, drift statistics, delayed-label performance and the alerts that act on them."""
