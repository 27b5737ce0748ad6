"""A project's data as the suite reads it: labels in the task's encoding, and the project's own generator."""

from __future__ import annotations

import pandas as pd

from mlops.errors import ConfigError, DataError
from mlops.project.hooks import call_hook
from mlops.project.spec import Project


def encode_labels(project: Project, values: pd.Series, source: str) -> pd.Series:
    """The label column as the task trains on it: for binary classification 1 for the positive class, else 0.

    Missing labels stay missing (an outcome not known yet). The positive class
    is compared as the data holds it, so ``1``, ``True`` and ``"yes"`` all work;
    a label with a third value, or without the positive one, is refused.
    """
    known = values.dropna()
    distinct = pd.unique(known)
    where = f"{source}: label {project.label.column!r} ({project.where}: label)"
    if project.task.name == "binary_classification":
        positive = project.label.positive
        # Like with like: 1, 1.0 and True are one class, but the text "1" is not the number 1.
        matches = known.map(lambda v: isinstance(v, str) == isinstance(positive, str) and v == positive)
        if len(distinct) > 2:
            shown = sorted(map(repr, distinct))[:10]
            raise DataError(f"{where} holds {len(distinct)} values {shown}; a binary task needs exactly two")
        if len(known) and not matches.any():
            raise DataError(f"{where} never holds the positive class {positive!r}; it holds "
                            f"{sorted(map(repr, distinct))} (is label.positive right?)")
        out = pd.Series(pd.NA, index=values.index, dtype="Int64")
        out[known.index] = matches.astype("int64")
        return out
    raise ConfigError(f"{project.where}: task {project.task.name!r} has no label encoding")  # pragma: no cover


def generate_data(project: Project, rows: int, seed: int | None = None, scenario: str = "none",
                  **options) -> pd.DataFrame:
    """Raw data from the project's own generator (``data.generator`` in ``project.yaml``), for demos and tests."""
    if project.data_hook is None:
        raise ConfigError(f"{project.where} declares no data generator (data: {{generator: data.py:generate}}); "
                          "bring your own data instead")
    seed = project.split.seed if seed is None else seed
    frame = call_hook(project, project.data_hook, rows, seed=seed, scenario=scenario, **options)
    if not isinstance(frame, pd.DataFrame):
        raise ConfigError(f"{project.data_hook} of project {project.name} returned {type(frame).__name__}, "
                          "not a pandas DataFrame")
    return frame
