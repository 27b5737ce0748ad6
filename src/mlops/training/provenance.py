"""Where a run came from: code version, environment lock, image.

In the component image these come from build-time environment variables
(the Dockerfile sets them); in a checkout they are read from git and from
requirements.lock, so local and cluster runs record the same fields.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from functools import lru_cache
from pathlib import Path

LOCK_FILE = "requirements.lock"


def project_root() -> Path | None:
    """The checkout this package runs from, if any (the folder holding the lock file)."""
    for folder in Path(__file__).resolve().parents:
        if (folder / LOCK_FILE).is_file():
            return folder
    return None


@lru_cache(maxsize=1)
def code_version() -> str:
    """Git commit of the code (``-dirty`` when the tree has uncommitted changes)."""
    if os.environ.get("MLOPS_CODE_VERSION"):
        return os.environ["MLOPS_CODE_VERSION"]
    root = project_root()
    if root is None:
        return "unknown"
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{sha}-dirty" if dirty else sha


@lru_cache(maxsize=1)
def environment_digest() -> str:
    """SHA-256 of the dependency lock the environment was built from."""
    if os.environ.get("MLOPS_LOCK_DIGEST"):
        return os.environ["MLOPS_LOCK_DIGEST"]
    root = project_root()
    if root is None:
        return "unknown"
    return "sha256:" + hashlib.sha256((root / LOCK_FILE).read_bytes()).hexdigest()


def component_image() -> str:
    """The image the running component came from ("local" outside a container)."""
    return os.environ.get("MLOPS_COMPONENT_IMAGE", "local")


def provenance_tags() -> dict[str, str]:
    return {
        "mlops.code_version": code_version(),
        "mlops.environment_digest": environment_digest(),
        "mlops.image": component_image(),
    }
