"""Data validation: the data contract, the streaming checks against it and its reference profile, and the report."""
