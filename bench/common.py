"""What the benchmark scripts in bench/ share: RESULTS.md, progress lines, the machine description.

The scripts are run as ``.venv/bin/python bench/<script>.py`` and import this file as the
top-level module ``common`` (each puts bench/ on ``sys.path`` first). It imports nothing but
the standard library at the top: the workers of bench_validation.py and bench_drift.py import
it in the side tools' own venvs (Great Expectations', Evidently's), where neither the suite nor
psutil is installed.
"""

from __future__ import annotations

import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RESULTS = BENCH_DIR / "RESULTS.md"
RESULTS_TITLE = "# Benchmarks"


def progress(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def machine() -> dict[str, str]:
    """Platform, CPUs (logical, physical, usable by this process), memory and Python version."""
    import psutil

    cpus_logical = os.cpu_count()
    cpus_physical = psutil.cpu_count(logical=False)
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = cpus_logical
    cpu = f"{cpus_logical} logical CPUs" + (f" ({cpus_physical} physical)" if cpus_physical else "")
    if usable != cpus_logical:
        cpu += f", {usable} usable by this process"
    return {"platform": platform.platform(), "cpu": cpu,
            "memory": f"{psutil.virtual_memory().total / 2**30:.1f} GiB", "python": platform.python_version()}


def write_results(section: str, heading: str, results: Path = RESULTS) -> None:
    """Replace the ``heading`` section of RESULTS.md (or of ``results``) with ``section``, keeping every other
    section.

    ``heading`` is the benchmark's ``## ...`` line; ``section`` its full text, starting with that line.
    A section runs to the next ``## `` line; without one for ``heading``, ``section`` is appended.
    A ``--quick`` run passes a file of its own temporary folder as ``results``.
    """
    if results.exists():
        text = results.read_text()
    else:
        text = (f"{RESULTS_TITLE}\n\nMeasured numbers from the scripts in `bench/` (`make bench`). "
                "Each benchmark owns one `##` section and rewrites only that section when it runs.\n")
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == heading), None)
    if start is None:
        new = text.rstrip("\n") + "\n\n" + section
    else:
        end = next((j for j in range(start + 1, len(lines)) if lines[j].startswith("## ")), len(lines))
        before = "\n".join(lines[:start]).rstrip("\n")
        after = "\n".join(lines[end:])
        new = before + "\n\n" + section.rstrip("\n") + ("\n\n" + after if after else "")  # a blank line before the next ##
    results.write_text(new.rstrip("\n") + "\n")


@contextmanager
def work_dir(prefix: str, keep: bool, what: str) -> Iterator[Path]:
    """A temporary folder for one benchmark run, removed afterwards unless ``keep``."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield work
    finally:
        if keep:
            progress(f"kept the benchmark's {what}: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


# The settings through which a user's platform or shell could leak into a benchmark's own.
PLATFORM_VARS = ("MLOPS_S3_ENDPOINT", "MLOPS_BUCKET", "MLFLOW_TRACKING_URI", "AWS_ACCESS_KEY_ID",
                 "AWS_SECRET_ACCESS_KEY")


def start_private_platform(cleanup, prefix: str, keep: bool, clear_vars: tuple[str, ...] = ()) -> tuple[Path, dict]:
    """Start a local platform of the benchmark's own in a fresh MLOPS_HOME, on free ports.

    Its settings replace any in os.environ (``clear_vars`` are dropped too);
    ``cleanup`` (an ExitStack) stops it and removes the directory unless ``keep``.
    Returns the directory and the ports.
    """
    from mlops.platform.local import DEFAULT_PORTS, LocalPlatform, free_ports

    home = Path(tempfile.mkdtemp(prefix=prefix))
    for var in (*PLATFORM_VARS, *clear_vars, *(f"MLOPS_PORT_{n.upper()}" for n in DEFAULT_PORTS)):
        os.environ.pop(var, None)
    os.environ["MLOPS_HOME"] = str(home)
    ports = free_ports(DEFAULT_PORTS)
    plat = LocalPlatform(home=home, ports=ports, bucket="mlops")
    if keep:
        cleanup.callback(progress, f"kept the benchmark's MLOPS_HOME: {home}")
    else:
        cleanup.callback(shutil.rmtree, home, ignore_errors=True)
    cleanup.callback(lambda: plat.down(progress=lambda msg: progress(f"platform {msg}")))
    progress(f"starting a private local platform in {home} (S3 port {ports['s3']}, MLflow port {ports['mlflow']})")
    os.environ.update(plat.up(progress=progress))
    return home, ports


def rel(path: Path) -> str:
    """``path`` relative to the repository when it is inside it (for messages and RESULTS.md)."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def peak_rss_bytes() -> int:
    """This process's peak resident set size so far.

    Linux's VmHWM, the high-water mark of this process image's memory. Not ru_maxrss: that
    one survives fork and exec, so a worker would report the benchmark parent's peak (the
    child's copy of the parent's pages counts until exec replaces them).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux, bytes on macOS


def ensure_side_env(venv: Path, requirements: Path, lock: Path, label: str) -> dict:
    """Build (or reuse) a benchmark-only virtualenv for a side tool (Great Expectations, Evidently).

    The tool is kept apart from the suite's pinned stack: ``venv`` is exactly ``lock`` (made
    from ``requirements`` by ``make lock``; see scripts/locked_venv.py). Returns what happened
    (``ok``, ``built``, ``seconds``, ``source``, the venv's ``python``) or the exact error.
    """
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import locked_venv
    finally:
        sys.path.pop(0)

    done = {"ok": True, "built": False, "seconds": 0.0, "source": lock.name, "python": str(venv / "bin" / "python")}
    start = time.perf_counter()
    try:
        _, built = locked_venv.ensure(venv, lock, requirements, f"benchmark-only {label}",
                                      progress=lambda line: progress(f"{line} (not part of any measurement)"))
    except locked_venv.LockedVenvError as exc:
        return {**done, "ok": False, "built": True, "seconds": time.perf_counter() - start, "error": str(exc)}
    return {**done, "built": built, "seconds": time.perf_counter() - start}


def run_worker_process(cmd: list[str], out: Path, log: Path, what: str, env: dict | None = None) -> dict:
    """Run one benchmark worker process and return the JSON it wrote to ``out``.

    Its output goes to ``log``; a failure raises with the log's last lines. The result gets
    ``process_seconds``, the worker's wall time start-up included.
    """
    import json

    out.unlink(missing_ok=True)
    with open(log, "w") as fh:
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        wall = time.perf_counter() - start
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        raise RuntimeError(f"{what} worker exited with {proc.returncode}; see {log}. Last lines:\n{tail}")
    result = json.loads(out.read_text())
    result["process_seconds"] = wall
    return result


def example_project(name: str):
    """One of the suite's example projects (``examples/<name>``), loaded as every stage loads it."""
    from mlops.project import resolve_project

    return resolve_project(name)


def generator_call(project, rows: int, seed: int, scenario: str = "none", call: str = "") -> str:
    """How RESULTS.md names a project's generated data (Markdown, backticks included): the example's own
    generator, called through ``mlops.project.data.generate_data``; ``call`` wraps the call (e.g.
    ``compute_features(project, {})``)."""
    extra = f", scenario={scenario!r}" if scenario != "none" else ""
    source = rel(project.root / project.data_hook.file) if project.data_hook else project.where
    text = f"generate_data(project, {rows}, seed={seed}{extra})"
    return f"`{call.format(text) if call else text}` (the {project.name} example's generator, `{source}`)"


@dataclass
class RegisteredModel:
    version: str
    raw: object  # the generated raw rows (a DataFrame: their entity ids)
    features: object  # mlops.stages' FeatureStageResult: rows, snapshot, materialized window
    trained: object  # mlops.stages' training result: run, metrics, the params it was fitted with
    project: object  # the mlops.project.Project it belongs to


def register_served_model(work: Path, store, data_uri: str, project, experiment: str, rows: int,
                          seed: int) -> RegisteredModel:
    """The project's own generated data -> features (Feast apply + materialize, so the online store can
    answer) -> the suite's training stages with the project's model params -> a registered version of the
    project's model: what the serving benches serve. ``work`` receives ``train.parquet`` and ``test.parquet``."""
    from mlops.platform.datasets import write_table
    from mlops.project.data import generate_data
    from mlops.stages import build_features, register, retrieve_training_data, train_and_log

    work.mkdir(parents=True, exist_ok=True)
    raw = generate_data(project, rows, seed=seed)
    write_table(raw, data_uri, store)
    features = build_features(project, data_uri, work / "features", store)
    train_info, _ = retrieve_training_data(project, data_uri, features.snapshot_uri, work / "train.parquet",
                                           work / "test.parquet", store)
    trained = train_and_log(project, str(work / "train.parquet"), train_info, experiment=experiment)
    version = register(trained.run.model_uri, project.names.model, trained.run.run_id, train_info.digest)
    return RegisteredModel(version, raw, features, trained, project)
