"""KFP pipelines assembled from the components, and their compiled YAML (compiled/)."""
