"""Shared fixtures: a real local platform (SeaweedFS S3 + MLflow) on free ports.

Started once per test session in a temporary MLOPS_HOME and stopped at the
end; its settings are put into os.environ so kfp.local tasks inherit them,
exactly as `mlops` commands do.
"""

from __future__ import annotations

import os

import pytest

from mlops.platform.local import DEFAULT_PORTS, LocalPlatform, free_ports


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
    from mlops.platform.storage import ObjectStore

    return ObjectStore(platform.s3_settings())


@pytest.fixture(scope="session")
def train_versions(platform):
    """Register versions of a project's model the way production makes them, for tests that serve or score one.

    ``make(project, raw, work, variants)``: the raw data to S3, Feast features (snapshot, apply,
    materialize), point-in-time training rows (``work/train.parquet``, ``work/test.parquet``), then one
    registered version per params override in ``variants``. Returns the versions and the features stage's
    result. ``project`` is usually a renamed copy of an example (tests.projects.renamed).
    """
    from mlops import stages
    from mlops.platform.storage import ObjectStore
    from tests.feature_rows import training_rows

    def make(project, raw, work, variants=({"max_iter": 5}, {"max_iter": 15})):
        train, features, rows, _ = training_rows(ObjectStore(platform.s3_settings()), work, project, raw)
        versions = []
        for params in variants:
            run = stages.train_and_log(project, str(rows), train, {**project.model.params, **params}).run
            versions.append(stages.register(run.model_uri, project.names.model, run.run_id, train.digest))
        return versions, features

    return make
