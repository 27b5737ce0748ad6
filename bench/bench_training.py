"""Benchmark: the training pipeline through kfp.local vs. the same stages in-process.

``make bench`` runs ``.venv/bin/python bench/bench_training.py``. It

1. starts its own local platform (S3 + MLflow) on free 127.0.0.1 ports with
   its state in a temporary MLOPS_HOME, and stops it at the end, even on
   failure;
2. for each of the two example projects, credit-default and churn, writes
   100,000 rows from the project's own generator
   (``mlops.project.data.generate_data``) to
   ``s3://mlops/bench/train-100k.parquet`` (credit-default) and
   ``s3://mlops/bench/train-churn-100k.parquet`` (churn);
3. runs ``mlops run training --local --param project=...`` on them as a
   subprocess, as a user would, REPEATS times: wall time measured here,
   per-task seconds from the CLI's ``--json`` output, peak RSS of the process
   tree sampled with psutil;
4. calls the same six stages in-process (no orchestration, no new
   processes) REPEATS times as the anchor;
5. prints a table per project and writes them into bench/RESULTS.md (only
   this benchmark's section is replaced; other benchmarks keep theirs).

``--quick`` checks the script end to end: 20,000 rows per project, one
repetition, logs and its section in the temporary MLOPS_HOME (removed at
the end unless ``--keep``), nothing written to bench/.

This is a benchmark, not a test: it asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import psutil

# bench/common.py: bench/ is on sys.path when this file is run as a script, not when it is imported by path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (RESULTS, example_project, generator_call, machine, progress, rel,  # noqa: E402
                    start_private_platform, write_results)

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / "bench"
OUT_DIR = BENCH_DIR / "out"
SECTION = "## Training pipeline (kfp.local, 100k rows)"

ROWS = 100_000
QUICK_ROWS = 20_000
# The example projects measured, in this order: the first is the section's main table, as before.
PROJECTS = ("credit-default", "churn")
SEED = {"credit-default": 42, "churn": 7}  # each example's own default seed
DATA_URI = {"credit-default": "s3://mlops/bench/train-100k.parquet",
            "churn": "s3://mlops/bench/train-churn-100k.parquet"}
QUICK_DATA_URI = {"credit-default": "s3://mlops/bench/train-quick.parquet",
                  "churn": "s3://mlops/bench/train-churn-quick.parquet"}
# What each project's train stage fits (for the prose).
MODEL_TEXT = {"credit-default": "a 200-iteration HistGradientBoosting model",
              "churn": "its build hook's impute, scale and one-hot pipeline in front of a LogisticRegression"}
STAGES = ("validate", "features", "retrieve", "train", "evaluate", "promote")
# kfp.local names tasks after their components.
TASK_OF_STAGE = {"validate": "validate-data", "features": "build-features", "retrieve": "retrieve-training-data",
                 "train": "train-model", "evaluate": "evaluate-model", "promote": "promote-model"}


# -- platform -----------------------------------------------------------------
# -- measurement helpers --------------------------------------------------------
class PeakRSS:
    """Samples the summed RSS of a process and all its descendants in a thread."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.pid, self.interval, self.peak = pid, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "PeakRSS":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self._stop.is_set():
            total = 0
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                break
            for proc in procs:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            self._stop.wait(self.interval)


def run_name(name: str, rep: int) -> str:
    """The log and JSON file name of one kfp.local run (credit-default keeps its earlier names)."""
    return f"training-run-{rep}" if name == PROJECTS[0] else f"training-run-{name}-{rep}"


def run_pipeline_cli(env: dict[str, str], rep: int, project_ref: str, data_uri: str, name: str,
                     out_dir: Path) -> dict:
    """One ``mlops run training --local`` as a subprocess; wall time, task seconds, peak RSS."""
    out_dir.mkdir(parents=True, exist_ok=True)
    out_json = out_dir / f"{run_name(name, rep)}.json"
    log = out_dir / f"{run_name(name, rep)}.log"
    out_json.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "mlops.cli", "run", "training", "--local", "--param", f"project={project_ref}",
           "--param", f"data_uri={data_uri}", "--json", str(out_json)]
    with open(log, "w") as fh:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        with PeakRSS(proc.pid) as rss:
            code = proc.wait()
        wall = time.perf_counter() - start
    if code != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        raise RuntimeError(f"`mlops run training --local` exited with {code}; see {log}. Last lines:\n{tail}")
    result = json.loads(out_json.read_text())
    task_seconds = result.get("task_seconds", {})
    verdict = result.get("outputs", {}).get("verdict")
    stages = {}
    for stage, task in TASK_OF_STAGE.items():
        matches = [v for k, v in task_seconds.items() if k == task] or \
                  [v for k, v in task_seconds.items() if stage in k]
        if not matches:
            why = f" (the gate said {verdict}, so nothing was promoted)" if stage == "promote" and verdict else ""
            raise RuntimeError(f"no timing for task {task!r} in {out_json}{why}: task_seconds={task_seconds}")
        stages[stage] = float(matches[0])
    return {"stages": stages, "total": wall, "pipeline": float(result.get("seconds", float("nan"))),
            "peak_rss": rss.peak, "verdict": verdict}


def run_in_process(rep: int, workdir: Path, project_ref: str, data_uri: str) -> dict:
    """The same six stages called directly: no kfp.local, no subprocesses.

    The project is resolved from ``project_ref`` (an example's name or a folder) as each component resolves
    it, inside the measured stages: the first one pays for it as the validate task does.
    """
    from mlops.platform.storage import ObjectStore
    from mlops.project import resolve_project
    from mlops.stages import (build_features, evaluate_candidate, promote_candidate, retrieve_training_data,
                              train_and_log, validate_dataset)
    from mlops.training.train import model_params

    base = workdir / f"inprocess-{rep}"
    base.mkdir(parents=True, exist_ok=True)
    store = ObjectStore.from_env()
    marks = [time.perf_counter()]
    project = resolve_project(project_ref, store=store)
    checked = validate_dataset(data_uri, project.contract("raw"), base / "validation", publish_to=store)
    marks.append(time.perf_counter())
    features = build_features(project, data_uri, base / "features", store)
    marks.append(time.perf_counter())
    train_info, _ = retrieve_training_data(project, data_uri, features.snapshot_uri, base / "train.parquet",
                                           base / "test.parquet", store)
    marks.append(time.perf_counter())
    result = train_and_log(project, str(base / "train.parquet"), train_info, model_params(project, "{}"),
                           tags={"mlops.raw_data_digest": checked.data_digest,
                                 "mlops.feature_snapshot": features.snapshot_uri,
                                 "mlops.feature_definitions": features.definitions_version})
    marks.append(time.perf_counter())
    gate = evaluate_candidate(project, base / "test.parquet", result.run.model_uri, base / "gate", store,
                              result.run.run_id)
    marks.append(time.perf_counter())
    version = None
    if gate.blessing.blessed:
        version, _ = promote_candidate(store, result.run.model_uri, project.names.model, result.run.run_id,
                                       train_info.digest, gate.champion_version, gate.high_stakes, gate.report_uri,
                                       result.trained.metrics)
    marks.append(time.perf_counter())
    stages = {stage: marks[i + 1] - marks[i] for i, stage in enumerate(STAGES)}
    return {"stages": stages, "total": marks[-1] - marks[0], "model_version": version,
            "roc_auc": result.trained.metrics.get("roc_auc"), "verdict": gate.blessing.verdict}


def model_copy(name: str, folder: Path, model: str) -> Path:
    """A copy of example ``name`` in ``folder/model`` whose registered model is ``model``; all else as it is.

    For a project that is not high-stakes (churn) the first blessed version becomes production, and a
    retrained identical candidate is then refused by the gate's change threshold: each repetition trains a
    model of its own, so every one does the same work (the first version, no champion, promoted), as every
    repetition of credit-default does (high-stakes: production never moves without an approval).
    """
    import shutil

    import yaml

    source = example_project(name).root
    target = folder / model
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
    doc = yaml.safe_load((target / "project.yaml").read_text())
    doc.setdefault("names", {})["model"] = model
    (target / "project.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return target


def needs_own_model(name: str) -> bool:
    """Whether a repetition of project ``name`` needs a model of its own (see model_copy)."""
    from mlops.evaluation.gate import project_gate

    return not project_gate(example_project(name)).high_stakes


# -- reporting ----------------------------------------------------------------------
def versions() -> dict[str, str]:
    out = {}
    for name in ("kfp", "mlflow", "scikit-learn"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def summarize(kfp_runs: list[dict], inproc_runs: list[dict]) -> list[dict]:
    rows = []
    for key in (*STAGES, "total"):
        kfp_vals = [r["total"] if key == "total" else r["stages"][key] for r in kfp_runs]
        in_vals = [r["total"] if key == "total" else r["stages"][key] for r in inproc_runs]
        kfp_med, in_med = statistics.median(kfp_vals), statistics.median(in_vals)
        rows.append({"name": key, "kfp_median": kfp_med, "kfp_min": min(kfp_vals),
                     "in_median": in_med, "in_min": min(in_vals),
                     "ratio": kfp_med / in_med if in_med > 0 else float("nan")})
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| stage | kfp.local median (s) | kfp.local min (s) | in-process median (s) | ratio (kfp.local / in-process) |",
             "|---|---:|---:|---:|---:|"]
    for r in rows:
        name = f"**{r['name']}**" if r["name"] == "total" else r["name"]
        lines.append(f"| {name} | {r['kfp_median']:.2f} | {r['kfp_min']:.2f} | {r['in_median']:.2f} | {r['ratio']:.2f}x |")
    return "\n".join(lines)


def other_numbers(kfp_runs: list[dict], inproc_runs: list[dict]) -> str:
    """The paragraph under a project's table: where the kfp.local total goes, peak memory, the first
    in-process repetition."""
    pipeline_med = statistics.median(r["pipeline"] for r in kfp_runs)
    total_med = statistics.median(r["total"] for r in kfp_runs)
    tasks_med = statistics.median(sum(r["stages"].values()) for r in kfp_runs)
    peak = max(r["peak_rss"] for r in kfp_runs)
    in_first = inproc_runs[0]
    return (f"Other numbers from the same run: the pipeline call itself (kfp.local executing the loaded YAML, "
            f"as `mlops run` reports it) took a median {pipeline_med:.2f} s, the six tasks {tasks_med:.2f} s, so "
            f"{total_med - pipeline_med:.2f} s of the user-visible total is the CLI process itself "
            f"(interpreter and library imports, preflight checks of S3 and MLflow, loading the YAML, the summary "
            f"read back from MLflow) and {pipeline_med - tasks_med:.2f} s is kfp.local between tasks. "
            f"Peak resident memory of the `mlops run` process tree (CLI plus the running task, sampled every "
            f"0.1 s): {peak / 2**20:.0f} MiB. The first in-process repetition, which pays the library imports and "
            f"first-call costs as every kfp.local task does, took {in_first['total']:.2f} s ("
            + ", ".join(f"{s} {in_first['stages'][s]:.2f} s" for s in STAGES) + ").")


def every_repetition(kfp_runs: list[dict], inproc_runs: list[dict]) -> str:
    return ("Every repetition (s), to judge the spread: "
            + "; ".join(f"{side} {key}: " + ", ".join(f"{(r['total'] if key == 'total' else r['stages'][key]):.2f}"
                                                      for r in runs)
                        for side, runs in (("kfp.local", kfp_runs), ("in-process", inproc_runs))
                        for key in ("train", "total")) + ".")


def section_text(measured: dict[str, dict], repeats: int, started: datetime, load: tuple, rows: int,
                 data_uris: dict[str, str]) -> str:
    """This benchmark's RESULTS.md section: ``measured[name]`` holds a project's ``kfp``, ``inprocess``,
    ``summary`` and ``data_bytes``; the first project's table comes first, as it always did."""
    m, v = machine(), versions()
    first, *others = PROJECTS
    main = measured[first]
    lines = [
        SECTION,
        "",
        f"- date: {started.strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {m['platform']}; {m['cpu']}; {m['memory']} RAM; Python {m['python']}",
        f"- versions: kfp {v['kfp']}, mlflow {v['mlflow']}, scikit-learn {v['scikit-learn']}",
        f"- data: {rows:,} rows from {generator_call(example_project(first), rows, SEED[first])}, "
        f"{main['data_bytes'] / 2**20:.1f} MiB of Parquet at `{data_uris[first]}` on the local SeaweedFS S3",
        f"- repeats: {repeats} of each, alternating (kfp.local, in-process, kfp.local, ...; each repetition "
        f"runs {', then '.join(PROJECTS)}); command: `.venv/bin/python bench/bench_training.py`",
        f"- load average (1 min) before / after the measurements: {load[0][0]:.2f} / {load[1][0]:.2f} "
        f"(other work on the machine inflates both sides; compare ratios from quiet runs)",
        "",
        f"Project {first} (`{rel(example_project(first).root)}`):",
        "",
        table(main["summary"]),
        "",
        other_numbers(main["kfp"], main["inprocess"]),
        "",
        every_repetition(main["kfp"], main["inprocess"]),
        "",
    ]
    for name in others:
        r = measured[name]
        project = example_project(name)
        own = (f" Each repetition trains the first version of a model of its own (`{r['models'][0]}`, "
               f"`{r['models'][1]}`, ...: a copy of the example differing only in `names.model`): {name} is not "
               f"high-stakes, so its first blessed version becomes production, and the gate's change threshold "
               f"refuses a retrained identical candidate, which would skip the promote task; this way every "
               f"repetition does the same work, as every credit-default repetition does (high-stakes: no "
               f"production alias moves without an approval, so it never has a champion).") if r["models"] else ""
        lines += [
            f"Project {name} (`{rel(project.root)}`), the second example, in the same runs: {rows:,} rows from "
            f"{generator_call(project, rows, SEED[name])}, {r['data_bytes'] / 2**20:.1f} MiB of Parquet at "
            f"`{data_uris[name]}`; its train stage fits {MODEL_TEXT.get(name, 'the project model')}." + own,
            "",
            table(r["summary"]),
            "",
            other_numbers(r["kfp"], r["inprocess"]),
            "",
            every_repetition(r["kfp"], r["inprocess"]),
            "",
        ]
    lines += [
        "What is measured: **kfp.local** is `mlops run training --local --param project=<project> --param "
        "data_uri=...` started as a "
        "subprocess, exactly as a user types it. It loads the compiled `pipelines/compiled/training_pipeline.yaml` "
        "(the file submitted to Kubeflow) and kfp.local's SubprocessRunner executes each task in a fresh Python "
        "process that imports the component's libraries, resolves the project, reads and writes its artifacts "
        "under the local "
        "pipeline root, and talks to S3 and MLflow over HTTP. The per-stage columns are kfp.local's own task "
        "durations (from its 'Executing task' to its 'finished' log record, written by the CLI to `--json`); "
        "the total is the wall time of the whole command measured by this script, start-up included. "
        "**in-process** resolves the same project and calls the same library functions the components call "
        "(`mlops.stages.validate_dataset`, "
        "`build_features`, `retrieve_training_data`, `train_and_log`, `evaluate_candidate`, `promote_candidate`) "
        "one after another in this benchmark's "
        "already-running interpreter against the same S3 and MLflow, with the same data and the project's "
        "model params, and times each call. Both sides do the same work (validate the raw Parquet against "
        "the project's raw contract and publish the report, compute, validate, snapshot and materialize the "
        "project's Feast features, "
        "retrieve the point-in-time rows and split off the test set, train the project's model ("
        + "; ".join(f"{name}: {MODEL_TEXT.get(name, 'its model')}" for name in PROJECTS)
        + "), log the run and the model to MLflow, "
        "score it and the champion on the test set and apply the project's gate, "
        "register a blessed model version that must reach READY and move its staging alias (and, for a first "
        "version of a model that is not high-stakes, production); the kfp.local train task also writes its small "
        "dashboard artifacts: metrics, ROC curve, confusion matrix, Markdown summary), so the ratio is the "
        "cost of orchestration: "
        "process start-up and imports per task, artifact passing and metadata through kfp.local, and the "
        "CLI's own start-up and checks. The medians on the in-process side are warm (imports already "
        "done after the first repetition). A large spread between repetitions usually means other load on "
        "the machine: scikit-learn's HistGradientBoosting runs one OpenMP thread per CPU and slows down "
        "by far more than the lost CPU share when those CPUs are busy.",
        "",
    ]
    return "\n".join(lines)


# -- main -----------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="repetitions of each side (default 3)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary MLOPS_HOME (logs, MLflow db)")
    parser.add_argument("--quick", action="store_true",
                        help=f"a check, not a measurement: {QUICK_ROWS:,} rows per project, one repetition, logs "
                             "and the section in the temporary MLOPS_HOME; bench/RESULTS.md and bench/out untouched")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    repeats = 1 if args.quick else args.repeats
    rows = QUICK_ROWS if args.quick else ROWS
    data_uris = QUICK_DATA_URI if args.quick else DATA_URI

    started = datetime.now(timezone.utc)
    with ExitStack() as cleanup:
        home, ports = start_private_platform(cleanup, "mlops-bench-", args.keep)
        child_env = {**os.environ, **{f"MLOPS_PORT_{n.upper()}": str(p) for n, p in ports.items()}}
        out_dir = home / "out" if args.quick else OUT_DIR

        from mlops.platform.datasets import write_table
        from mlops.platform.storage import ObjectStore, parse_s3_uri
        from mlops.project.data import generate_data

        measured = {}
        for name in PROJECTS:
            project, data_uri = example_project(name), data_uris[name]
            progress(f"{name}: generating {rows:,} rows (seed {SEED[name]}, the project's own generator) and "
                     f"writing them to {data_uri}")
            df = generate_data(project, rows, seed=SEED[name])
            digest = write_table(df, data_uri)
            bucket, key = parse_s3_uri(data_uri)
            data_bytes = ObjectStore.from_env().stat(key, bucket).size
            del df
            progress(f"  wrote {data_bytes / 2**20:.1f} MiB ({digest[:19]}...)")
            measured[name] = {"kfp": [], "inprocess": [], "data_bytes": data_bytes, "models": []}

        # The two sides alternate so that both see the same conditions on a machine whose load may vary.
        work = home / "inprocess"
        copies = home / "projects"
        load_before = os.getloadavg()
        for rep in range(1, repeats + 1):
            for name in PROJECTS:
                got, data_uri = measured[name], data_uris[name]
                refs = {"kfp": name, "inprocess": name}
                if needs_own_model(name):
                    refs = {side: str(model_copy(name, copies, f"{name}-{side}-{rep}")) for side in refs}
                    got["models"] = got["models"] or [f"{name}-kfp-{rep}", f"{name}-inprocess-{rep}"]
                progress(f"[{rep}/{repeats}] {name} kfp.local: `mlops run training --local` "
                         f"(output: {rel(out_dir)}/{run_name(name, rep)}.log) ...")
                run = run_pipeline_cli(child_env, rep, refs["kfp"], data_uri, name, out_dir)
                got["kfp"].append(run)
                progress(f"  total {run['total']:.2f} s; " + ", ".join(f"{s} {run['stages'][s]:.2f} s" for s in STAGES)
                         + f"; peak RSS {run['peak_rss'] / 2**20:.0f} MiB; gate {run['verdict']}")
                progress(f"[{rep}/{repeats}] {name} in-process: validate -> features -> retrieve -> train -> "
                         "evaluate -> promote ...")
                run = run_in_process(rep, work / name, refs["inprocess"], data_uri)
                got["inprocess"].append(run)
                progress(f"  total {run['total']:.2f} s; " + ", ".join(f"{s} {run['stages'][s]:.2f} s" for s in STAGES)
                         + f"; gate {run['verdict']}, model version {run['model_version']}, validation ROC AUC "
                         f"{run['roc_auc']:.3f}")
        load = (load_before, os.getloadavg())

        for name in PROJECTS:
            measured[name]["summary"] = summarize(measured[name]["kfp"], measured[name]["inprocess"])
        section = section_text(measured, repeats, started, load, rows, data_uris)
        results = home / "RESULTS-quick.md" if args.quick else RESULTS
        write_results(section, SECTION, results)
        print()
        print(SECTION)
        for name in PROJECTS:
            print()
            print(f"Project {name}:")
            print()
            print(table(measured[name]["summary"]))
        print()
        progress(f"wrote {rel(results)}" + (" (--quick: the temporary MLOPS_HOME's copy, not bench/RESULTS.md)"
                                             if args.quick else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
