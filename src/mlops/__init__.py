"""mlops: the library behind the suite's KFP components, CLI and servers.

Every stage's logic lives here as plain functions with no KFP import; the
components in ``components/`` are thin adapters over it.
"""

__version__ = "0.1.0"
