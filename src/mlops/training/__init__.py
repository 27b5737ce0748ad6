"""Training: the project's estimator fitted deterministically, the MLflow run that records it, and where the run came from."""
