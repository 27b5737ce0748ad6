"""The example projects as tests use them: loaded once, their data generated, copies under other names.

A test that registers models, writes Feast views or logs requests works on a
copy of an example renamed for it (:func:`renamed`), so tests sharing one
platform never touch each other's models, aliases, Feast projects or logs,
exactly as two teams' projects must not.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import yaml

from mlops.features.engineering import same_row_training_rows as offline_rows  # noqa: F401 (for tests)
from mlops.project import Project, examples_dir, load_project, resolve_project
from mlops.project.data import generate_data

CREDIT = resolve_project("credit-default")
CHURN = resolve_project("churn")
EXAMPLES = (CREDIT, CHURN)


def generate_credit_data(rows: int, seed: int = 42, scenario: str = "none", **options) -> pd.DataFrame:
    """The credit-default example's raw applications (its own generator, through the project's hook)."""
    return generate_data(CREDIT, rows, seed=seed, scenario=scenario, **options)


def generate_churn_data(rows: int, seed: int = 7, scenario: str = "none", **options) -> pd.DataFrame:
    return generate_data(CHURN, rows, seed=seed, scenario=scenario, **options)


def renamed(example: Project | str, folder: Path, name: str, edit=None, files: dict[str, str] | None = None) -> Project:
    """A copy of ``example`` in ``folder/name`` whose model, experiment, Feast project and prefix are ``name``.

    ``edit(doc)`` may change the copy's parsed project.yaml further before it is written; ``files`` (relative
    path -> text) are written into the copy before it is loaded.
    """
    source = example.root if isinstance(example, Project) else examples_dir() / example
    target = Path(folder) / name
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
    doc = yaml.safe_load((target / "project.yaml").read_text())
    doc["name"] = name
    doc["names"] = {"model": name, "experiment": name, "feast_project": name.replace("-", "_"), "prefix": name}
    if edit is not None:
        edit(doc)
    for relative, text in (files or {}).items():
        (target / relative).write_text(text)
    (target / "project.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return load_project(target)
