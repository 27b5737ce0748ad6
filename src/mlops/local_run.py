"""Run a compiled pipeline YAML on this machine with kfp.local.

The file run here is the very file submitted to Kubeflow: it is loaded with
``kfp.components.load_component_from_file`` and executed by kfp.local's
SubprocessRunner in the current environment (the component image's library
is this package). Tasks inherit the environment, which carries the local
platform's settings.
"""

from __future__ import annotations

import contextlib
import io
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import yaml

from mlops.errors import ERROR_MARKER, PipelineError

PIPELINES_DIR = Path(__file__).resolve().parents[2] / "pipelines" / "compiled"


@dataclass
class LocalRunResult:
    pipeline: str
    outputs: dict[str, Any]
    seconds: float
    task_seconds: dict[str, float] = field(default_factory=dict)


class _Tee(io.TextIOBase):
    """Pass task logs through to the terminal while keeping the lines we act on."""

    def __init__(self, target) -> None:
        self.target, self.errors_seen, self.task_events = target, [], []
        self._buffer = ""

    def write(self, text: str) -> int:
        self.target.write(text)
        self._buffer += text
        *lines, self._buffer = self._buffer.split("\n")
        for line in lines:
            if ERROR_MARKER in line:
                self.errors_seen.append(line.split(ERROR_MARKER, 1)[1].strip())
        return len(text)

    def flush(self) -> None:
        self.target.flush()


class _TaskTimer:
    """Times each task from kfp.local's own 'Executing task' / 'finished' log records."""

    def __init__(self) -> None:
        import logging

        self.started: dict[str, float] = {}
        self.seconds: dict[str, float] = {}
        timer = self

        class Handler(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                msg = record.getMessage()
                name = _task_name(msg)
                if name and msg.startswith("Executing task"):
                    timer.started[name] = time.perf_counter()
                elif name and "finished with status" in msg and name in timer.started:
                    timer.seconds[name] = time.perf_counter() - timer.started[name]

        self.handler = Handler()


def _task_name(message: str) -> str | None:
    import re

    match = re.search(r"[Tt]ask \W*'?([\w.-]+?)'?\W* (?:finished|$)", message + " ")
    if message.startswith("Executing task"):
        match = re.search(r"Executing task \W*'?([\w.-]+)", message)
    return match.group(1) if match else None


@contextlib.contextmanager
def _capture(timer: _TaskTimer) -> Iterator[_Tee]:
    import logging

    tee = _Tee(sys.stdout)
    root = logging.getLogger()
    root.addHandler(timer.handler)
    with contextlib.redirect_stdout(tee):
        try:
            yield tee
        finally:
            root.removeHandler(timer.handler)


def pipeline_file(name: str) -> Path:
    """The compiled YAML of pipeline ``name`` (e.g. "training")."""
    path = PIPELINES_DIR / f"{name}_pipeline.yaml"
    if not path.is_file():
        known = sorted(p.name.removesuffix("_pipeline.yaml") for p in PIPELINES_DIR.glob("*_pipeline.yaml"))
        raise PipelineError(f"no compiled pipeline {name!r} in {PIPELINES_DIR}; known: {known} (run `make compile`)")
    return path


def pipeline_parameters(path: Path) -> dict[str, dict]:
    """The pipeline's input parameters with their types and defaults, read from the YAML."""
    spec = yaml.safe_load(path.read_text())
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


def run_local(path: Path, arguments: dict[str, Any], pipeline_root: Path) -> LocalRunResult:
    """Execute the compiled pipeline at ``path`` with kfp.local and return its outputs."""
    from kfp import components, local

    pipeline_root.mkdir(parents=True, exist_ok=True)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(pipeline_root),
               raise_on_error=True)
    pipeline = components.load_component_from_file(str(path))
    timer = _TaskTimer()
    start = time.perf_counter()
    with _capture(timer) as tee:
        try:
            task = pipeline(**arguments)
        except RuntimeError as exc:
            detail = "; ".join(tee.errors_seen) or str(exc)
            raise PipelineError(f"pipeline {path.name} failed: {detail}") from None
    outputs = dict(task.outputs) if hasattr(task, "outputs") else {}
    return LocalRunResult(path.name, outputs, time.perf_counter() - start, timer.seconds)
