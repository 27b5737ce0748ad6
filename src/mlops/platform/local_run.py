"""Run a compiled pipeline YAML on this machine with kfp.local.

The file run here is the very file submitted to Kubeflow: it is loaded with
``kfp.components.load_component_from_file`` and executed by kfp.local's
SubprocessRunner in the current environment (the component image's library
is this package). Tasks inherit the environment, which carries the local
platform's settings.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import io
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import yaml

from mlops.errors import ERROR_MARKER, PipelineError

# Installed with the package (package data), so this works outside a checkout too.
PIPELINES_DIR = Path(str(importlib.resources.files("pipelines") / "compiled"))


@dataclass
class LocalRunResult:
    pipeline: str
    outputs: dict[str, Any]
    seconds: float
    task_seconds: dict[str, float] = field(default_factory=dict)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_STARTED = re.compile(r"Executing task '([^']+)'")
_FINISHED = re.compile(r"Task '([^']+)' finished with status (\w+)")
_PROGRESS = ("Executing task", "finished with status", "Running pipeline")


class _Tee(io.TextIOBase):
    """Everything kfp.local prints goes to ``log``; progress lines also to ``console``.

    kfp.local prints both task output and its own log records to stdout.
    Along the way this keeps what the runner acts on: the stages' marked
    error lines, the last lines of output, and each task's duration.
    """

    def __init__(self, log, console) -> None:
        self.log, self.console = log, console
        self.errors_seen: list[str] = []
        self.recent: list[str] = []
        self.task_seconds: dict[str, float] = {}
        self._started: dict[str, float] = {}
        self._buffer = ""

    def write(self, text: str) -> int:
        self.log.write(text)
        self._buffer += text
        *lines, self._buffer = self._buffer.split("\n")
        for line in lines:
            self._observe(line)
        return len(text)

    def _observe(self, line: str) -> None:
        plain = _ANSI.sub("", line)
        if ERROR_MARKER in plain:
            self.errors_seen.append(plain.split(ERROR_MARKER, 1)[1].rstrip().removeprefix(" "))
        if plain.strip():
            self.recent = (self.recent + [plain.rstrip()])[-15:]
        if (started := _STARTED.search(plain)):
            self._started[started.group(1)] = time.perf_counter()
        elif (finished := _FINISHED.search(plain)) and finished.group(1) in self._started:
            self.task_seconds[finished.group(1)] = time.perf_counter() - self._started[finished.group(1)]
        if self.console is not self.log and any(p in plain for p in _PROGRESS):
            self.console.write(plain.strip() + "\n")
            self.console.flush()

    def flush(self) -> None:
        self.log.flush()


@contextlib.contextmanager
def _capture(log_file: Path | None) -> Iterator[_Tee]:
    """Route task output to ``log_file`` (or the terminal) while keeping progress visible."""
    import warnings

    with contextlib.ExitStack() as stack:
        console = sys.stdout
        log = console
        if log_file is not None:
            log_file.parent.mkdir(parents=True, exist_ok=True)
            log = stack.enter_context(open(log_file, "w"))
        tee = _Tee(log, console)
        stack.enter_context(contextlib.redirect_stdout(tee))
        stack.enter_context(warnings.catch_warnings())
        # Expected locally: the component image is not Python's, display names are cluster-only.
        warnings.filterwarnings("ignore", message=".*custom or non-Python base image.*")
        warnings.filterwarnings("ignore", message=".*have no effect in the current local runner.*")
        yield tee


def pipeline_file(name: str) -> Path:
    """The compiled YAML of pipeline ``name`` (e.g. "training")."""
    path = PIPELINES_DIR / f"{name}_pipeline.yaml"
    if not path.is_file():
        known = sorted(p.name.removesuffix("_pipeline.yaml") for p in PIPELINES_DIR.glob("*_pipeline.yaml"))
        raise PipelineError(f"no compiled pipeline {name!r} in {PIPELINES_DIR}; known: {known} (run `make compile`)")
    return path


def pipeline_parameters(path: Path) -> dict[str, dict]:
    """The pipeline's input parameters with their types and defaults, read from the YAML."""
    spec = next(yaml.safe_load_all(path.read_text()))  # a second document holds the platform (k8s) spec
    return spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {})


def coerce_arguments(path: Path, raw: dict[str, str]) -> dict[str, Any]:
    """Turn ``name=value`` strings into the parameter types the pipeline declares."""
    params = pipeline_parameters(path)
    out: dict[str, Any] = {}
    for name, value in raw.items():
        if name not in params:
            raise PipelineError(f"{path.name} has no parameter {name!r}; its parameters are {sorted(params)}")
        kind = params[name].get("parameterType")
        try:
            out[name] = {"NUMBER_INTEGER": int, "NUMBER_DOUBLE": float}.get(kind, str)(value)
        except ValueError:
            raise PipelineError(f"parameter {name}={value!r} is not a valid {kind}") from None
        if kind == "BOOLEAN":
            out[name] = value.lower() in ("1", "true", "yes")
    return out


def run_local(path: Path, arguments: dict[str, Any], pipeline_root: Path,
              log_file: Path | None = None) -> LocalRunResult:
    """Execute the compiled pipeline at ``path`` with kfp.local and return its outputs.

    Task logs go to ``log_file`` when given (progress lines still show),
    else to the terminal. A failure raises PipelineError with the failing
    stage's own message.
    """
    from kfp import components, local

    pipeline_root.mkdir(parents=True, exist_ok=True)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(pipeline_root),
               raise_on_error=True)
    pipeline = components.load_component_from_file(str(path))
    start = time.perf_counter()
    with _capture(log_file) as tee:
        try:
            task = pipeline(**arguments)
        except RuntimeError as exc:
            detail = "\n".join(tee.errors_seen)
            if not detail:  # not a reported user error: show the end of the task's output
                detail = f"{exc}\n" + "\n".join(tee.recent)
            where = f" (task logs: {log_file})" if log_file else ""
            raise PipelineError(f"pipeline {path.name} failed{where}: {detail}") from None
    outputs = dict(task.outputs) if hasattr(task, "outputs") else {}
    return LocalRunResult(path.name, outputs, time.perf_counter() - start, tee.task_seconds)
