"""The model registry: versions and their files, alias promotion with approvals and rollback, the audit trail."""
