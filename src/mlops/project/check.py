"""Check a project before any work: every hook imports, the model builds, every policy and contract loads,
and, given data, a dry run of validation, features, labels and a small training on a sample of it.

Loading ``project.yaml`` already refuses unknown keys and wrong types; this
goes one floor up and opens everything the file names. Every check runs and
every problem is kept (a check whose input failed is not tried, and says
so), so one run names all that is wrong, each problem naming its file, key
or function, before a pipeline runs or anything is registered.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from mlops.errors import MlopsError
from mlops.project import Project, load_hook

DEFAULT_SAMPLE_ROWS = 5_000


@dataclass
class ProjectCheck:
    """What was checked (one line each), every problem found, and what a problem left untried."""

    project: Project
    done: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # consequences of a problem, not problems of their own

    @property
    def passed(self) -> bool:
        return not self.problems

    def attempt(self, what: str, check: Callable[[], str | None]) -> bool:
        """Run one check; its line goes to ``done`` or its error to ``problems``. True when it passed."""
        try:
            line = check()
        except MlopsError as exc:
            self.problems.append(str(exc))
            return False
        self.done.append(line or what)
        return True

    def not_tried(self, what: str, because: str) -> None:
        self.skipped.append(f"{what}: not tried, because {because}")


def check_project(project: Project, data_uri: str | None = None, sample_rows: int = DEFAULT_SAMPLE_ROWS,
                  store=None) -> ProjectCheck:
    """Every check of ``project`` (and of ``data_uri`` against it, when given); see :class:`ProjectCheck`."""
    from mlops.evaluation.gate import project_gate
    from mlops.features.definitions import FeatureDefinitions
    from mlops.monitoring.policy import project_policy
    from mlops.rollout.policy import load_policy as load_rollout_policy
    from mlops.training.train import build_model
    from mlops.validation.contract import load_contract

    report = ProjectCheck(project)
    report.done.append(f"{project.where}: {project.task.name}, entity {project.entity.name} ({project.entity.key}, "
                       f"{project.entity.type}), label {project.label.column} (positive {project.label.positive!r}), "
                       f"{len(project.features.columns)} features")
    imported = {}
    for what, hook in (("features.hook", project.features.hook), ("model.build", project.model.build),
                       ("metrics.hook", project.metrics.hook if project.metrics else None),
                       ("data.generator", project.data_hook)):
        if hook is not None:
            imported[what] = report.attempt(f"{what} {hook} imports", lambda hook=hook: _imported(project, hook))
    hooks_ok = all(imported.values())

    def model_line() -> str:
        model = build_model(project)
        return (f"model builds: {type(model).__name__}"
                + (f" ({project.model.estimator})" if project.model.estimator else f" (from {project.model.build})"))

    if imported.get("model.build", True):
        model_ok = report.attempt("model builds", model_line)
    else:
        model_ok = False
        report.not_tried("building the model", f"{project.model.build} does not import")

    def gate_line() -> str:
        gate = project_gate(project)
        return (f"gate {project.gate.name}: {len(gate.value_thresholds)} value and {len(gate.change_thresholds)} "
                f"change thresholds, fairness on {list(project.sensitive) or 'nothing'}"
                + (", high-stakes" if gate.high_stakes else ""))

    report.attempt("gate loads", gate_line)
    if project.rollout is not None:
        report.attempt("rollout policy", lambda: _rollout_policy_line(project.rollout))
    if project.monitoring is not None:
        def monitoring_line() -> str:
            policy = project_policy(project)
            if policy.rollout_policy:
                load_rollout_policy(policy.rollout_policy)
            return (f"monitoring policy {project.monitoring.name} loads"
                    + (f" (KPI {policy.performance.kpi})" if policy.performance.kpi else ""))

        report.attempt("monitoring policy loads", monitoring_line)
    contracts_ok = {}
    for kind, path in project.contracts.items():
        contracts_ok[kind] = report.attempt(
            f"contract {kind}", lambda path=path, kind=kind: f"contract {kind}: {path.name} "
                                                             f"({len(load_contract(path).columns)} columns)")

    def feast_line() -> str:
        definitions = FeatureDefinitions(project)
        view = definitions.feature_view("<snapshot>")
        definitions.feature_service(view)
        return (f"Feast definitions build: entity {definitions.entity.name}, view {view.name} "
                f"({len(view.schema)} features), service {definitions.service_name}")

    report.attempt("Feast definitions build", feast_line)
    if data_uri:
        _dry_run(report, data_uri, sample_rows, store, hooks_ok=hooks_ok, model_ok=model_ok,
                 raw_contract_ok=contracts_ok.get("raw", False))
    return report


def _dry_run(report: ProjectCheck, data_uri: str, sample_rows: int, store, *, hooks_ok: bool, model_ok: bool,
             raw_contract_ok: bool) -> None:
    """Validate ``data_uri`` against the raw contract, then features, labels and a small training on a sample."""
    from mlops.features.engineering import compute_features, label_events, same_row_training_rows
    from mlops.platform.datasets import fetch, read_parquet
    from mlops.training.train import train

    project, read = report.project, {}

    def read_line(local: Path) -> str:
        read["raw"] = read_parquet(fetch(data_uri, local, store), data_uri)
        return f"data {data_uri} reads: {len(read['raw']):,} rows, {local.stat().st_size:,} bytes"

    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "data.parquet"
        if not report.attempt("data reads", lambda: read_line(local)):
            return
        if raw_contract_ok:
            report.attempt("raw contract", lambda: _validated(project, local, data_uri))
        elif "raw" not in project.contracts:
            report.not_tried("validation against the raw contract", f"{project.where} declares no contracts.raw")
    raw = read["raw"]
    sample = raw if len(raw) <= sample_rows else raw.sample(sample_rows, random_state=project.split.seed)
    of_sample = f"on a sample of {len(sample):,} of {len(raw):,} rows"
    if not hooks_ok:
        report.not_tried("features, labels and training on the data", "a hook does not import")
        return
    features_ok = report.attempt("features", lambda: f"features computed {of_sample}: "
                                                     f"{len(compute_features(project, sample)):,} feature rows")
    labels_ok = report.attempt("labels", lambda: _label_line(project, label_events(project, sample), of_sample))
    if not (features_ok and labels_ok and model_ok):
        report.not_tried("a small training", "the features, the labels or the model failed above")
        return

    def training_line() -> str:
        trained = train(project, same_row_training_rows(project, sample), source=f"{data_uri} (sample)")
        shown = ", ".join(f"{k} {v:.3f}" for k, v in trained.metrics.items() if k in ("roc_auc", "f1"))
        return (f"a small training {of_sample} fits: {trained.train_rows:,} training and "
                f"{trained.validation_rows:,} validation rows, validation {shown}")

    report.attempt("a small training", training_line)


def _imported(project: Project, hook) -> None:
    load_hook(project, hook)


def _rollout_policy_line(path: Path) -> str:
    from mlops.rollout.policy import load_policy

    load_policy(path)
    return f"rollout policy {path.name} loads"


def _validated(project: Project, path: Path, source: str) -> str:
    from mlops.errors import DataError
    from mlops.validation.checks import validate_parquet
    from mlops.validation.contract import load_contract

    result = validate_parquet(path, load_contract(project.contract("raw")), source=source)
    if not result.passed:
        raise DataError(result.summary())
    return f"the data passes contract raw: {result.summary()}"


def _label_line(project: Project, events, of_sample: str) -> str:
    positives = int(events[project.label.column].sum())
    return (f"labels read {of_sample}: {len(events):,} known, {positives:,} positive "
            f"({project.label.positive!r}, {positives / max(len(events), 1):.1%})")
