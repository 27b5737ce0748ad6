"""A project: everything that belongs to one team's model, read strictly from its folder's ``project.yaml``.

The library knows no dataset. A project names its task, its entity and join key, its
timestamps, its label and positive class, its sensitive attributes and slices, its
feature columns (and an optional feature hook), its model (an allow-listed estimator
with params, or a ``build_model`` hook), its split, and where its gate, rollout and
monitoring policies and its data contracts live. Loading refuses anything unknown or
mistyped, naming the file and the key, before any work is done.

A task type is an entry of :data:`TASKS`: what its label looks like and which metrics
its gate may use. Regression is the next entry, not a rewrite.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops.errors import ConfigError
from mlops.platform.config_files import mapping, number, read_yaml

PROJECT_FILE = "project.yaml"
FEATURE_TYPES = ("float", "integer", "string")  # Feast Float64, Int64, String
ENTITY_TYPES = ("string", "integer")
_NAME = re.compile(r"^[a-z][a-z0-9-]{1,62}$")  # a model, an InferenceService, an S3 prefix: DNS-1123-ish
_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HOOK = re.compile(r"^(?P<file>[A-Za-z0-9_./-]+\.py):(?P<function>[A-Za-z_][A-Za-z0-9_]*)$")


@dataclass(frozen=True)
class Task:
    """What a task type asks of a project and offers its gate."""

    name: str
    metrics: tuple[str, ...]  # what the gate's thresholds may name (besides the project's custom metrics)
    lower_is_better: frozenset[str]
    needs_positive_class: bool


TASKS = {
    "binary_classification": Task(
        "binary_classification",
        ("roc_auc", "pr_auc", "f1", "precision", "recall", "accuracy", "log_loss", "log_loss_skill", "brier"),
        frozenset({"log_loss", "brier"}), needs_positive_class=True),
}

# Estimators a project may name by class (ZenML-style allow-list); anything else comes from a build_model hook.
ESTIMATORS = {
    "binary_classification": (
        "sklearn.ensemble.HistGradientBoostingClassifier", "sklearn.ensemble.RandomForestClassifier",
        "sklearn.ensemble.ExtraTreesClassifier", "sklearn.ensemble.GradientBoostingClassifier",
        "sklearn.linear_model.LogisticRegression", "sklearn.tree.DecisionTreeClassifier",
    ),
}


@dataclass(frozen=True)
class Hook:
    """A function in one of the project's files: ``file.py:function``, the file relative to the project."""

    file: str
    function: str

    def __str__(self) -> str:
        return f"{self.file}:{self.function}"


@dataclass(frozen=True)
class Entity:
    name: str  # Feast entity name
    key: str  # the join key column
    type: str  # "string" or "integer"


@dataclass(frozen=True)
class Label:
    column: str
    positive: Any  # the positive class as the data holds it: 1, True, "yes"

    @property
    def class_names(self) -> tuple[str, str]:
        """How dashboards name the negative and the positive class (encoded 0 and 1)."""
        return f"not {self.column}", self.column


@dataclass(frozen=True)
class Features:
    columns: tuple[tuple[str, str], ...]  # (name, type), the model's inputs in order
    hook: Hook | None  # compute_features(raw) -> frame; without it the raw columns are the features
    ttl_days: float

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(n for n, _ in self.columns)

    def of_type(self, *types: str) -> tuple[str, ...]:
        return tuple(n for n, t in self.columns if t in types)


@dataclass(frozen=True)
class Model:
    estimator: str | None  # an allow-listed class, by its import path
    params: dict
    build: Hook | None  # build_model(params) -> estimator, instead of ``estimator``


@dataclass(frozen=True)
class Split:
    test_fraction: float
    validation_fraction: float
    seed: int


@dataclass(frozen=True)
class Names:
    model: str  # the registered model, the InferenceService
    experiment: str  # the MLflow experiment
    feast_project: str  # one Feast project per suite project
    prefix: str  # its S3 prefix (datasets, features, reports, logs)


@dataclass(frozen=True)
class CustomMetrics:
    """A project's own metrics: ``hook(y_true, scores, threshold) -> {name: value}`` over the test set."""

    hook: Hook
    names: tuple[str, ...]  # what the gate may name, beside the task's metrics
    lower_is_better: frozenset[str]


@dataclass(frozen=True)
class Demo:
    """The demo's roles, cast from the project: which generator scenarios and which model params play them."""

    broken: str  # a scenario the raw contract must stop
    drift: str  # a scenario monitoring must detect, and a model retrained on it beats production
    drift_options: dict  # extra generator arguments for the drifted batch (e.g. a later start)
    first: dict  # model params of the first production model
    worse: dict  # params of a candidate the gate must refuse against it
    better: dict  # params of a candidate the gate must bless against it


@dataclass(frozen=True)
class Project:
    root: Path
    name: str
    task: Task
    description: str
    entity: Entity
    event_timestamp: str  # the as-of time of a label event
    label_timestamp: str | None  # when the label became known (delayed labels), if the data says
    label: Label
    sensitive: tuple[str, ...]  # never features; fairness is judged on each
    slices: tuple[str, ...]  # metrics are reported per value of each
    features: Features
    model: Model
    split: Split
    names: Names
    gate: Path
    rollout: Path | None
    monitoring: Path | None
    contracts: dict[str, Path] = field(default_factory=dict)  # "raw", "features"
    metrics: CustomMetrics | None = None  # the project's own metrics, judged by its gate like the task's
    data_hook: Hook | None = None  # generate(rows, seed, scenario) -> raw frame, for demos and tests
    demo: Demo | None = None  # how `mlops demo` tells the story with this project's data and model
    digest: str = ""  # sha256 of every file of the project, in path order: its identity in lineage
    source: str = ""  # how it was named (an example, a folder, an s3:// archive): what other processes resolve

    @property
    def where(self) -> str:
        return str(self.root / PROJECT_FILE)

    @property
    def metric_names(self) -> tuple[str, ...]:
        """Every metric the gate may name: the task's, then the project's own."""
        return (*self.task.metrics, *(self.metrics.names if self.metrics else ()))

    @property
    def lower_is_better(self) -> frozenset[str]:
        return self.task.lower_is_better | (self.metrics.lower_is_better if self.metrics else frozenset())

    def contract(self, kind: str) -> str:
        """The path of the project's data contract of ``kind`` ("raw" or "features")."""
        if kind not in self.contracts:
            raise ConfigError(f"{self.where} declares no contracts.{kind}: add `contracts: {{{kind}: "
                              f"contracts/{kind}.yaml}}` (make one with `mlops schema infer`)")
        return str(self.contracts[kind])


# -- loading ---------------------------------------------------------------------------------

_TOP = {"name", "task", "description", "entity", "timestamps", "label", "sensitive", "slices", "features", "model",
        "split", "names", "gate", "rollout", "monitoring", "contracts", "metrics", "data", "demo"}
_REQUIRED = {"name", "task", "entity", "timestamps", "label", "features", "model", "gate"}


def load_project(root: str | Path) -> Project:
    """The project in folder ``root``; a ConfigError naming ``project.yaml`` and the key for anything wrong."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"project {root}: not a folder (a project is a folder with {PROJECT_FILE})")
    path = root / PROJECT_FILE
    if not path.is_file():
        raise ConfigError(f"project {root}: no {PROJECT_FILE} in it")
    raw = mapping(read_yaml(path, "project file"), str(path), _TOP, _REQUIRED)
    where = str(path)
    name = _name(raw["name"], f"{where}: name")
    task = _task(raw["task"], where)
    entity = _entity(raw["entity"], f"{where}: entity")
    timestamps = mapping(raw["timestamps"], f"{where}: timestamps", {"event", "label"}, {"event"})
    event_ts = _column(timestamps["event"], f"{where}: timestamps.event")
    label_ts = _column(timestamps["label"], f"{where}: timestamps.label") if "label" in timestamps else None
    label = _label(raw["label"], task, f"{where}: label")
    sensitive = _columns(raw.get("sensitive", []), f"{where}: sensitive")
    slices = _columns(raw.get("slices", []), f"{where}: slices")
    features = _features(raw["features"], root, f"{where}: features")
    reserved = {entity.key: "the entity key", event_ts: "timestamps.event", label.column: "the label",
                **({label_ts: "timestamps.label"} if label_ts else {}), **{s: "a sensitive attribute" for s in sensitive}}
    clash = [f"{n} (also {reserved[n]})" for n in features.names if n in reserved]
    if clash:
        raise ConfigError(f"{where}: features.columns may not hold {', '.join(clash)}: those are never features")
    model = _model(raw["model"], task, root, f"{where}: model")
    split = _split(raw.get("split", {}), f"{where}: split")
    names = _names(raw.get("names", {}), name, f"{where}: names")
    contracts = mapping(raw.get("contracts", {}), f"{where}: contracts", {"raw", "features"})
    metrics = _metrics(raw["metrics"], task, root, f"{where}: metrics") if "metrics" in raw else None
    data = mapping(raw.get("data", {}), f"{where}: data", {"generator"})
    return Project(
        root=root.resolve(), name=name, task=task, description=_text(raw.get("description", ""), f"{where}: description"),
        entity=entity, event_timestamp=event_ts, label_timestamp=label_ts, label=label, sensitive=sensitive,
        slices=slices, features=features, model=model, split=split, names=names,
        gate=_file(raw["gate"], root, f"{where}: gate"),
        rollout=_file(raw["rollout"], root, f"{where}: rollout") if "rollout" in raw else None,
        monitoring=_file(raw["monitoring"], root, f"{where}: monitoring") if "monitoring" in raw else None,
        contracts={k: _file(v, root, f"{where}: contracts.{k}") for k, v in contracts.items()},
        metrics=metrics,
        data_hook=parse_hook(data["generator"], root, f"{where}: data.generator") if "generator" in data else None,
        demo=_demo(raw["demo"], f"{where}: demo", "generator" in data) if "demo" in raw else None,
        digest=project_digest(root), source=str(root.resolve()))


def project_files(root: str | Path) -> list[Path]:
    """The files that make a project, in path order (caches, bytecode and hidden files left out)."""
    root = Path(root)
    return sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                  and not any(part.startswith(".") for part in p.relative_to(root).parts))


def project_digest(root: str | Path) -> str:
    """sha256 over every project file's relative path and bytes: the project's identity in lineage."""
    digest = hashlib.sha256()
    for path in project_files(root):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return "sha256:" + digest.hexdigest()


def _text(raw: Any, where: str) -> str:
    if not isinstance(raw, str):
        raise ConfigError(f"{where} must be text, got {type(raw).__name__}")
    return raw


def _name(raw: Any, where: str) -> str:
    if not isinstance(raw, str) or not _NAME.match(raw):
        raise ConfigError(f"{where} must be 2-63 lower-case letters, digits and dashes, starting with a letter "
                          f"(it names the model, its InferenceService and its S3 prefix); got {raw!r}")
    return raw


def _column(raw: Any, where: str) -> str:
    if not isinstance(raw, str) or not _COLUMN.match(raw):
        raise ConfigError(f"{where} must be a column name (letters, digits, underscores), got {raw!r}")
    return raw


def _columns(raw: Any, where: str) -> tuple[str, ...]:
    if not isinstance(raw, list):
        raise ConfigError(f"{where} must be a list of column names, got {type(raw).__name__}")
    names = tuple(_column(c, f"{where}[{i}]") for i, c in enumerate(raw))
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"{where} names {dupes} twice")
    return names


def _task(raw: Any, where: str) -> Task:
    if raw not in TASKS:
        raise ConfigError(f"{where}: task must be one of {sorted(TASKS)}, got {raw!r}")
    return TASKS[raw]


def _entity(raw: Any, where: str) -> Entity:
    raw = mapping(raw, where, {"name", "key", "type"}, {"name", "key"})
    kind = raw.get("type", "string")
    if kind not in ENTITY_TYPES:
        raise ConfigError(f"{where}.type must be one of {list(ENTITY_TYPES)}, got {kind!r}")
    return Entity(_column(raw["name"], f"{where}.name"), _column(raw["key"], f"{where}.key"), kind)


def _label(raw: Any, task: Task, where: str) -> Label:
    raw = mapping(raw, where, {"column", "positive"}, {"column"} | ({"positive"} if task.needs_positive_class else set()))
    positive = raw.get("positive")
    if task.needs_positive_class and (positive is None or isinstance(positive, (list, dict, float))):
        raise ConfigError(f"{where}.positive must be the positive class as the data holds it (1, true or a "
                          f"string such as 'yes'), got {positive!r}")
    return Label(_column(raw["column"], f"{where}.column"), positive)


def _features(raw: Any, root: Path, where: str) -> Features:
    raw = mapping(raw, where, {"columns", "hook", "ttl_days"}, {"columns"})
    columns = raw["columns"]
    if not isinstance(columns, dict) or not columns:
        raise ConfigError(f"{where}.columns must map each feature column to its type ({', '.join(FEATURE_TYPES)})")
    typed = []
    for name, kind in columns.items():
        _column(name, f"{where}.columns")
        if kind not in FEATURE_TYPES:
            raise ConfigError(f"{where}.columns.{name}: type must be one of {list(FEATURE_TYPES)}, got {kind!r}")
        typed.append((name, kind))
    ttl = number(raw.get("ttl_days", 90), f"{where}.ttl_days", 1e-6)
    hook = parse_hook(raw["hook"], root, f"{where}.hook") if "hook" in raw else None
    return Features(tuple(typed), hook, ttl)


def _model(raw: Any, task: Task, root: Path, where: str) -> Model:
    raw = mapping(raw, where, {"estimator", "params", "build"})
    if ("estimator" in raw) == ("build" in raw):
        raise ConfigError(f"{where}: name either an estimator ({', '.join(ESTIMATORS[task.name])}) or a build hook "
                          "(build: model.py:build_model), not both and not neither")
    params = raw.get("params", {})
    if not isinstance(params, dict) or not all(isinstance(k, str) for k in params):
        raise ConfigError(f"{where}.params must be a mapping of parameter names to values")
    estimator = raw.get("estimator")
    if estimator is not None and estimator not in ESTIMATORS[task.name]:
        raise ConfigError(f"{where}.estimator {estimator!r} is not allowed for {task.name}; allowed: "
                          f"{', '.join(ESTIMATORS[task.name])} (or a build hook for any other estimator)")
    return Model(estimator, dict(params), parse_hook(raw["build"], root, f"{where}.build") if "build" in raw else None)


def _split(raw: Any, where: str) -> Split:
    raw = mapping(raw, where, {"test_fraction", "validation_fraction", "seed"})
    seed = raw.get("seed", 42)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"{where}.seed must be a non-negative integer, got {seed!r}")
    return Split(number(raw.get("test_fraction", 0.2), f"{where}.test_fraction", 0.01, 0.5),
                 number(raw.get("validation_fraction", 0.2), f"{where}.validation_fraction", 0.01, 0.5), seed)


def _names(raw: Any, name: str, where: str) -> Names:
    raw = mapping(raw, where, {"model", "experiment", "feast_project", "prefix"})
    model = _name(raw.get("model", name), f"{where}.model")
    feast = raw.get("feast_project", name.replace("-", "_"))
    if not isinstance(feast, str) or not re.match(r"^[A-Za-z][A-Za-z0-9_]*$", feast):
        raise ConfigError(f"{where}.feast_project must be letters, digits and underscores, got {feast!r}")
    return Names(model, _text(raw.get("experiment", name), f"{where}.experiment"), feast,
                 _name(raw.get("prefix", name), f"{where}.prefix"))


def _metrics(raw: Any, task: Task, root: Path, where: str) -> CustomMetrics:
    raw = mapping(raw, where, {"hook", "names", "lower_is_better"}, {"hook", "names"})
    names = _columns(raw["names"], f"{where}.names")
    if not names:
        raise ConfigError(f"{where}.names must list the metrics the hook returns")
    taken = sorted(set(names) & set(task.metrics))
    if taken:
        raise ConfigError(f"{where}.names: {taken} are metrics of the task {task.name} already; name yours otherwise")
    lower = _columns(raw.get("lower_is_better", []), f"{where}.lower_is_better")
    unknown = sorted(set(lower) - set(names))
    if unknown:
        raise ConfigError(f"{where}.lower_is_better names {unknown}, which are not in {where}.names")
    return CustomMetrics(parse_hook(raw["hook"], root, f"{where}.hook"), names, frozenset(lower))


def _demo(raw: Any, where: str, has_generator: bool) -> Demo:
    raw = mapping(raw, where, {"scenarios", "drift_options", "models"}, {"scenarios", "models"})
    if not has_generator:
        raise ConfigError(f"{where}: the demo needs data.generator, the project's own data generator")
    scenarios = mapping(raw["scenarios"], f"{where}.scenarios", {"broken", "drift"}, {"broken", "drift"})
    models = mapping(raw["models"], f"{where}.models", {"first", "worse", "better"}, {"first", "worse", "better"})
    for key, value in (*scenarios.items(), *models.items()):
        kind = str if key in scenarios else dict
        if not isinstance(value, kind):
            raise ConfigError(f"{where}: {key} must be {'a scenario name' if kind is str else 'a mapping of params'}, "
                              f"got {value!r}")
    options = raw.get("drift_options", {})
    if not isinstance(options, dict):
        raise ConfigError(f"{where}.drift_options must be a mapping of generator arguments")
    return Demo(scenarios["broken"], scenarios["drift"], dict(options), dict(models["first"]), dict(models["worse"]),
                dict(models["better"]))


def _inside(raw: Any, root: Path, where: str) -> Path:
    if not isinstance(raw, str) or not raw:
        raise ConfigError(f"{where} must be a path relative to the project folder, got {raw!r}")
    path = (root / raw).resolve()
    if root.resolve() not in path.parents:
        raise ConfigError(f"{where}: {raw!r} is outside the project folder")
    if not path.is_file():
        raise ConfigError(f"{where}: {raw!r} does not exist in {root}")
    return path


def _file(raw: Any, root: Path, where: str) -> Path:
    return _inside(raw, root, where)


def parse_hook(raw: Any, root: Path, where: str) -> Hook:
    """``file.py:function``, the file inside ``root``; a ConfigError naming ``where`` otherwise."""
    match = _HOOK.match(raw) if isinstance(raw, str) else None
    if not match:
        raise ConfigError(f"{where} must name a function as file.py:function, got {raw!r}")
    _inside(match["file"], root, where)
    return Hook(match["file"], match["function"])
