"""Small registered model versions of a project, trained without Feast, for tests of what comes after
training (registry moves, the CLI, a champion the gate compares against)."""

from __future__ import annotations

from pathlib import Path

from mlops.platform.datasets import DatasetInfo, write_table
from mlops.project import Project
from mlops.stages import register, train_and_log
from mlops.training.train import model_params
from tests.projects import generate_churn_data, generate_credit_data, offline_rows

# Cheap params for models that are registered, not judged: version i of each example.
QUICK = {"credit-default": lambda i: {"max_iter": 5 + i}, "churn": lambda i: {"C": 0.1 * (i + 1)}}
DATA = {"credit-default": generate_credit_data, "churn": generate_churn_data}


def training_run(work: Path, project: Project, example: Project, overrides: dict):
    """One small tracked run of ``project`` (a copy of ``example``) on its own training rows: (run, digest)."""
    df = offline_rows(project, DATA[example.name](2_000, seed=3))
    # As point-in-time retrieval returns them: numeric features float64 (NaN = missing), not nullable Int64.
    df = df.astype({c: "float64" for c in project.features.of_type("float", "integer")})
    path = Path(work) / "train.parquet"
    digest = write_table(df, str(path))
    run = train_and_log(project, str(path), DatasetInfo(str(path), len(df), list(df.columns), digest),
                        model_params(project, overrides)).run
    return run, digest


def registered_versions(work: Path, project: Project, example: Project, versions: int = 3) -> list[str]:
    """Register ``versions`` small versions of ``project``'s model (``project`` a renamed copy of ``example``)."""
    out = []
    for i in range(versions):
        run, digest = training_run(work, project, example, QUICK[example.name](i))
        out.append(register(run.model_uri, project.names.model, run.run_id, digest))
    return out
