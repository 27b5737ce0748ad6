"""Shared fixtures: a real local platform (SeaweedFS S3 + MLflow) on free ports.

Started once per test session in a temporary MLOPS_HOME and stopped at the
end; its settings are put into os.environ so kfp.local tasks inherit them,
exactly as `mlops` commands do.
"""

from __future__ import annotations

import os

import pytest

from mlops.local_platform import DEFAULT_PORTS, LocalPlatform, free_ports


@pytest.fixture(scope="session")
def platform(tmp_path_factory):
    """A running local platform; yields it with its environment applied to os.environ."""
    home = tmp_path_factory.mktemp("mlops-home")
    saved = dict(os.environ)
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MLOPS_S3_ENDPOINT", "MLFLOW_TRACKING_URI"):
        os.environ.pop(key, None)
    os.environ["MLOPS_HOME"] = str(home)
    plat = LocalPlatform(home=home, ports=free_ports(DEFAULT_PORTS))
    try:
        os.environ.update(plat.up(progress=lambda *_: None))
        yield plat
    finally:
        plat.down(progress=lambda *_: None)
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture
def store(platform):
    from mlops.storage import ObjectStore

    return ObjectStore(platform.s3_settings())
