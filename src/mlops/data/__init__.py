"""Synthetic data generation for the suite."""
