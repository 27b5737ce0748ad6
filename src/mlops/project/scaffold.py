"""``mlops project init``: a new project folder, filled in from a sample of the team's data or with every
required field marked.

From data, the entity key, event timestamp, label and sensitive attributes are
what the team names; every other column becomes a feature typed from the data,
the positive class is read from the label's values where they say it (0/1,
booleans), and both data contracts are inferred from the sample (raw rows, and
the feature table computed from them). The gate, rollout and monitoring
policies start from templates whose every bound is marked REVIEW. Without
data, each field only the team can fill holds a ``<REQUIRED: ...>`` marker
that loading refuses, naming the key. The folder appears whole or not at all.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pandas as pd
import yaml

from mlops.errors import ConfigError, DataError
from mlops.project.spec import _NAME, ESTIMATORS, PROJECT_FILE, load_project

TEMPLATES = ("gate.yaml", "rollout.yaml", "monitoring.yaml")
ESTIMATOR = ESTIMATORS["binary_classification"][0]  # HistGradientBoosting: handles missing values and categories


def required(what: str) -> str:
    return f"<REQUIRED: {what}>"


@dataclass(frozen=True)
class DataColumns:
    """What only the team can say about its data; the rest is read from it."""

    key: str
    timestamp: str
    label: str
    positive: str | None = None  # as typed on the command line; None: read from the label's values
    sensitive: tuple[str, ...] = ()
    label_timestamp: str | None = None


def init_project(parent: str | Path, name: str, data: pd.DataFrame | None = None,
                 columns: DataColumns | None = None, source: str = "the data") -> Path:
    """Create ``parent/name``; from ``data`` (a sample of the raw data, ``columns`` naming its roles) when given."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(f"project name must be 2-63 lower-case letters, digits and dashes, starting with a "
                          f"letter (it names the model, its InferenceService and its S3 prefix); got {name!r}")
    target = Path(parent) / name
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ConfigError(f"{target} already exists and is not an empty folder; choose another name or folder")
    if (data is None) != (columns is None):
        raise ConfigError("init from data needs both the data and its columns (--key, --timestamp, --label)")
    staging = Path(parent) / f".{name}.init"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        for template in TEMPLATES:
            (staging / template).write_text(resources.files("mlops.project").joinpath("templates", template).read_text())
        if data is None:
            (staging / PROJECT_FILE).write_text(_project_yaml(name, None, None))
        else:
            _from_data(staging, name, data, columns, source)
        if target.exists():
            target.rmdir()
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _from_data(folder: Path, name: str, data: pd.DataFrame, columns: DataColumns, source: str) -> None:
    from mlops.features.engineering import compute_features
    from mlops.validation.contract import infer_contract, write_contract_files

    if data.empty:
        raise DataError(f"{source} holds no rows: a project is inferred from a sample of its data")
    roles = {"--key": columns.key, "--timestamp": columns.timestamp, "--label": columns.label,
             **({"--label-timestamp": columns.label_timestamp} if columns.label_timestamp else {}),
             **{f"--sensitive {s}": s for s in columns.sensitive}}
    absent = [f"{flag} ({column})" for flag, column in roles.items() if column not in data.columns]
    if absent:
        raise DataError(f"{source} has no column for {', '.join(absent)}; its columns: {list(data.columns)}")
    described = {"entity_type": "integer" if pd.api.types.is_integer_dtype(data[columns.key]) else "string",
                 "positive": _positive(data[columns.label], columns.positive, source),
                 "features": _feature_columns(data, set(roles.values())), "columns": columns}
    if not described["features"]:
        raise DataError(f"{source}: no column is left to be a feature once the key, timestamps, label and "
                        "sensitive attributes are set aside")
    (folder / PROJECT_FILE).write_text(_project_yaml(name, described, None))
    project = load_project(folder)
    contracts = {"raw": (data, [columns.key, columns.timestamp], columns.timestamp)}
    features = compute_features(project, data)
    contracts["features"] = (features, [columns.key, "feature_timestamp"], "feature_timestamp")
    for kind, (frame, key, timestamp) in contracts.items():
        contract = infer_contract(frame, f"{name.replace('-', '_')}_{kind}", key=key, timestamp=timestamp)
        contract.description = (f"Inferred by `mlops project init` from {len(frame):,} rows of {source}. REVIEW: "
                                "widen or tighten the bounds to what your domain allows.")
        write_contract_files(contract, frame, folder / "contracts" / f"{kind}.yaml")
    (folder / PROJECT_FILE).write_text(_project_yaml(name, described, {k: f"contracts/{k}.yaml" for k in contracts}))
    load_project(folder)


def _positive(label: pd.Series, given: str | None, source: str):
    """The positive class as the data holds it (the command line gives text; the data may hold 1 or True)."""
    values = label.dropna().unique().tolist()
    if len(values) != 2:
        raise DataError(f"{source}: label {label.name!r} must hold exactly two values for binary "
                        f"classification; it holds {sorted(map(str, values))[:10]}")
    if given is None:
        if pd.api.types.is_bool_dtype(label):
            return True
        if set(values) == {0, 1}:
            return 1
        raise ConfigError(f"name the positive class with --positive: label {label.name!r} holds "
                          f"{sorted(map(str, values))}")
    for value in values:
        if str(value).lower() == given.lower():
            return value.item() if hasattr(value, "item") else value
    raise ConfigError(f"--positive {given!r} is not a value of label {label.name!r}, which holds "
                      f"{sorted(map(str, values))}")


def _feature_columns(data: pd.DataFrame, taken: set[str]) -> dict[str, str]:
    """Every other column typed as Feast will hold it; timestamps are never features."""
    out = {}
    for column in data.columns:
        dtype = data[column].dtype
        if column in taken or pd.api.types.is_datetime64_any_dtype(dtype):
            continue
        if pd.api.types.is_bool_dtype(dtype):
            out[column] = "string"  # "True"/"False" categories: no silent 0/1 encoding
        elif pd.api.types.is_integer_dtype(dtype):
            out[column] = "integer"
        elif pd.api.types.is_float_dtype(dtype):
            out[column] = "float"
        else:
            out[column] = "string"
    return out


def _project_yaml(name: str, described: dict | None, contracts: dict[str, str] | None) -> str:
    """project.yaml as text, so the comments that say what to fill in or review survive."""
    if described is None:
        entity = {"name": required("what one row is about, e.g. account"), "key": required("its id column"),
                  "type": "string"}
        timestamps = {"event": required("the column of when the row's facts were known")}
        label = {"column": required("the outcome column"),
                 "positive": required("the positive class as the data holds it: 1, true or a string such as yes")}
        features, sensitive = {required("a feature column"): "float"}, []
    else:
        columns = described["columns"]
        entity = {"name": columns.key.removesuffix("_id") or columns.key, "key": columns.key,
                  "type": described["entity_type"]}
        timestamps = {"event": columns.timestamp, **({"label": columns.label_timestamp} if columns.label_timestamp
                                                     else {})}
        label = {"column": columns.label, "positive": described["positive"]}
        features, sensitive = described["features"], list(columns.sensitive)

    def block(key: str, value) -> str:
        return yaml.safe_dump({key: value}, sort_keys=False, default_flow_style=False, width=110).rstrip()

    origin = ("every <REQUIRED: ...> must be filled in before `mlops project check` passes"
              if described is None else "filled in from a sample of the data; REVIEW the feature types")
    contract_lines = (block("contracts", contracts) if contracts else
                      "# contracts: inferred by `mlops project init NAME --data FILE --key ... --timestamp ... "
                      "--label ...`,\n#   or by `mlops schema infer`; validation and features need both:\n"
                      "#   raw: contracts/raw.yaml\n#   features: contracts/features.yaml")
    return "\n".join([
        f"# Project {name}, written by `mlops project init`: {origin}.",
        "# README, \"Projects: bring your own model\", says what each key means. Paths are relative to this folder.",
        f"name: {name}",
        "task: binary_classification",
        "description: REVIEW what the model decides and what a wrong score costs",
        "",
        block("entity", entity),
        block("timestamps", timestamps),
        block("label", label),
        "",
        "# Never features; fairness is judged on each. Slices (reported per value) may be added as `slices: [...]`.",
        block("sensitive", sensitive),
        "",
        "# Without a hook the raw columns are the features. A hook (features.hook: features.py:compute_features)",
        "# computes them from the raw frame instead.",
        block("features", {"columns": features}),
        "",
        "# An allow-listed estimator with its params, or build: model.py:build_model for any scikit-learn",
        "# classifier with fit and predict_proba (a Pipeline too).",
        block("model", {"estimator": ESTIMATOR, "params": {"max_iter": 200, "learning_rate": 0.05}}),
        "",
        block("split", {"test_fraction": 0.2, "validation_fraction": 0.2, "seed": 42}),
        "",
        "gate: gate.yaml",
        "rollout: rollout.yaml",
        "monitoring: monitoring.yaml",
        contract_lines,
        "",
    ])
