"""The Kubernetes side that is ours to run: the in-cluster bootstrap Job and the kind end-to-end check."""
