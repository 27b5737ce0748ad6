"""Benchmark: drift detection, ours vs. Evidently's DataDriftPreset, on 20 columns.

``make bench`` runs ``.venv/bin/python bench/bench_drift.py``. It

1. builds Evidently's own virtualenv ``bench/.venv-evidently`` from
   ``bench/evidently-requirements.lock`` (hash-checked; Evidently is a
   benchmark-only dependency kept apart from the suite's pinned stack) unless
   it is already there for the same lock;
2. writes the data once to Parquet in ``bench/out/drift/`` (reused while the
   generator and this script's columns are unchanged): 20 columns from the
   credit-default example's generator (``generate_data(project, rows, seed,
   scenario)``, examples/credit-default/data.py: its 8 numeric features, 4
   categorical ones, ``gender``,
   ``default`` and 6 derived numeric columns), a reference (seed 42, scenario
   ``none``) and a current file (seed 43, ``covariate_shift``: incomes lower,
   utilization and late payments higher), at 100,000 and at 1,000,000 rows;
3. at each size, compares current with reference in fresh worker processes
   that read the Parquet files themselves: ours with
   ``mlops.monitoring.drift.compare_parquet``, Evidently (in its venv) with
   ``pandas.read_parquet`` + ``Report([DataDriftPreset()])`` on a
   ``DataDefinition`` naming the same numeric and categorical columns; each
   worker reports its wall time, its peak RSS (``VmHWM``) and, per column,
   the test, its value and the verdict;
4. checks that both chose the same test per column, that the values agree to
   1e-6, and that they flag the same columns and the same dataset drift;
5. builds our stored reference profile from the 1M reference
   (``profile_parquet``, 20,000 points per numeric column) and times scoring
   the 100k current window against it in a fresh process (load the profile
   JSON, read and summarise the window, compare), and how far those
   statistics are from the exact ones;
6. writes a section of bench/RESULTS.md (only this benchmark's section is
   replaced; other benchmarks keep theirs).

``--rows 100000`` (or fewer) is a quick run at one size that leaves
RESULTS.md alone. ``--quick`` checks the script end to end: 5,000 rows, one
repetition, our side only (no Evidently venv is built), data and worker files
in a temporary directory, nothing written to bench/. This is a benchmark, not
a test: it asserts nothing.

The same file is the worker of every side (``--worker ...``); it imports
nothing but the standard library and bench/common.py at the top, so the
Evidently worker runs in Evidently's venv, where the suite is not installed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

# bench/common.py: bench/ is on sys.path when this file is run as a script, not when it is imported by path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (BENCH_DIR, RESULTS, ensure_side_env, example_project, generator_call, machine,  # noqa: E402
                    peak_rss_bytes, progress, rel, run_worker_process, work_dir, write_results)

OUT_DIR = BENCH_DIR / "out"
DATA_DIR = OUT_DIR / "drift"
SECTION = "## Drift detection (1M rows x 20 columns)"

FULL_ROWS = 1_000_000
SMALL_ROWS = 100_000
QUICK_ROWS = 5_000
PROJECT = "credit-default"  # the example whose generator makes the data (the columns below are its own)
REFERENCE = {"seed": 42, "scenario": "none"}
CURRENT = {"seed": 43, "scenario": "covariate_shift"}
TOLERANCE = 1e-6

EV_VENV = BENCH_DIR / ".venv-evidently"
EV_REQUIREMENTS = BENCH_DIR / "evidently-requirements.txt"
EV_LOCK = BENCH_DIR / "evidently-requirements.lock"
# Evidently sends usage telemetry unless told not to; a benchmark must not talk to the network.
EV_ENV = {"DO_NOT_TRACK": "1"}

# The monitored columns and their kinds, declared once and given to both tools.
GENERATED_NUMERIC = ("age", "income", "employment_years", "credit_utilization", "num_open_accounts",
                     "num_late_payments_12m", "loan_amount", "debt_to_income")
CATEGORICAL = ("employment_type", "home_ownership", "region", "loan_purpose", "gender", "default")
DERIVED = {  # column -> how it is computed (a feature feed's derived columns; missing where an input is)
    "loan_to_income": "loan_amount / income",
    "log_income": "log(income)",
    "utilization_x_late": "credit_utilization * num_late_payments_12m",
    "debt_amount": "debt_to_income * income",
    "income_per_account": "income / (num_open_accounts + 1)",
    "employment_share": "employment_years / (age - 17)",
}
KINDS = {**{c: "numeric" for c in GENERATED_NUMERIC}, **{c: "categorical" for c in CATEGORICAL},
         **{c: "numeric" for c in DERIVED}}


# =============================================================================================
# Workers: one comparison in a fresh process; timings, peak RSS and the per-column results.
# =============================================================================================
def _versions(*names: str) -> dict[str, str]:
    from importlib import metadata

    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _number(value) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value


def _ours_columns(report) -> dict:
    return {c.column: {"kind": c.kind, "method": c.method, "value": _number(c.value) if c.value is not None else None,
                       "threshold": c.threshold, "drifted": bool(c.drifted), "missing_drifted": bool(c.missing_drifted),
                       "reference_missing": c.reference_missing, "current_missing": c.current_missing}
            for c in report.features}


def worker_ours(args, kinds: dict) -> dict:
    t0 = time.perf_counter()
    from mlops.monitoring.drift import compare_parquet

    imports = time.perf_counter() - t0
    rss_before = peak_rss_bytes()
    start = time.perf_counter()
    report = compare_parquet(args.reference, args.current, kinds, workers=1)
    seconds = time.perf_counter() - start
    return {"tool": "ours", "seconds": seconds, "import_seconds": imports, "rss_before": rss_before,
            "peak_rss": peak_rss_bytes(), "columns": _ours_columns(report), "share": report.share_drifted,
            "dataset_drift": report.dataset_drift,
            "versions": _versions("mlops-suite", "pandas", "pyarrow", "numpy", "scipy")}


def worker_evidently(args, kinds: dict) -> dict:
    t0 = time.perf_counter()
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.legacy.calculations import stattests
    from evidently.presets import DataDriftPreset

    imports = time.perf_counter() - t0
    # Evidently names the chosen test in each ValueDrift metric by its display name; its stattest
    # registry maps that back to the test's id, which is what ours reports.
    names = {t.display_name: t.name for t in vars(stattests).values() if isinstance(t, stattests.StatTest)}
    definition = DataDefinition(numerical_columns=[c for c, k in kinds.items() if k == "numeric"],
                                categorical_columns=[c for c, k in kinds.items() if k == "categorical"])
    rss_before = peak_rss_bytes()
    start = time.perf_counter()
    reference = pd.read_parquet(args.reference, columns=list(kinds))
    current = pd.read_parquet(args.current, columns=list(kinds))
    read = time.perf_counter() - start
    start = time.perf_counter()
    report = Report([DataDriftPreset()], include_tests=True)
    snapshot = report.run(Dataset.from_pandas(current, data_definition=definition),
                          Dataset.from_pandas(reference, data_definition=definition))
    run = time.perf_counter() - start
    start = time.perf_counter()
    doc = snapshot.dict()
    extract = time.perf_counter() - start

    # Evidently's own verdict per column: its ValueDrift test fails when the column drifted.
    status = {t["metric_config"]["metric_id"]: t["status"] for t in doc["tests"]}
    columns, share, dataset_drift = {}, None, None
    for metric in doc["metrics"]:
        config = metric["config"]
        if config["type"].endswith(":ValueDrift"):
            label = config["method"]
            columns[config["column"]] = {"kind": kinds[config["column"]], "method": names.get(label, label),
                                         "method_label": label, "value": _number(metric["value"]),
                                         "threshold": config["threshold"],
                                         "drifted": status.get(metric["id"]) == "FAIL"}
        elif config["type"].endswith(":DriftedColumnsCount"):
            share = float(metric["value"]["share"])
            dataset_drift = status.get(metric["id"]) == "FAIL"  # its test: share < drift_share
    import evidently

    return {"tool": "evidently", "seconds": read + run, "read_seconds": read, "run_seconds": run,
            "extract_seconds": extract, "import_seconds": imports, "rss_before": rss_before,
            "peak_rss": peak_rss_bytes(), "columns": columns, "share": share, "dataset_drift": dataset_drift,
            "versions": {"evidently": evidently.__version__,
                         **_versions("pandas", "pyarrow", "numpy", "scipy")}}


def worker_profile_build(args, kinds: dict) -> dict:
    t0 = time.perf_counter()
    from mlops.stats.profile import profile_parquet

    imports = time.perf_counter() - t0
    rss_before = peak_rss_bytes()
    start = time.perf_counter()
    profile = profile_parquet(args.reference, kinds)
    profile.save(args.profile)
    seconds = time.perf_counter() - start
    points = {n: int(s.values.size) for n, s in profile.features.items() if kinds[n] == "numeric"}
    return {"tool": "profile-build", "seconds": seconds, "import_seconds": imports, "rss_before": rss_before,
            "peak_rss": peak_rss_bytes(), "profile_bytes": Path(args.profile).stat().st_size,
            "rows": profile.rows, "points": points}


def worker_profile_score(args, kinds: dict) -> dict:
    t0 = time.perf_counter()
    import pandas as pd

    from mlops.monitoring.drift import compare
    from mlops.stats.profile import Profile

    imports = time.perf_counter() - t0
    rss_before = peak_rss_bytes()
    start = time.perf_counter()
    reference = Profile.load(args.profile)
    loaded = time.perf_counter()
    window = pd.read_parquet(args.current, columns=list(kinds))
    read = time.perf_counter()
    current = Profile.of_frame(window, kinds, max_points=None, source=str(args.current))
    summarised = time.perf_counter()
    report = compare(reference, current)
    done = time.perf_counter()
    return {"tool": "profile-score", "seconds": done - start, "load_seconds": loaded - start,
            "read_seconds": read - loaded, "summarise_seconds": summarised - read, "compare_seconds": done - summarised,
            "import_seconds": imports, "rss_before": rss_before, "peak_rss": peak_rss_bytes(),
            "columns": _ours_columns(report), "share": report.share_drifted, "dataset_drift": report.dataset_drift,
            "exact": {c.column: bool(c.exact) for c in report.features}}


WORKERS = {"ours": worker_ours, "evidently": worker_evidently, "profile-build": worker_profile_build,
           "profile-score": worker_profile_score}


def run_worker(args) -> int:
    result = WORKERS[args.worker](args, json.loads(args.kinds))
    Path(args.out).write_text(json.dumps(result, indent=1))
    return 0


# =============================================================================================
# The benchmark itself (runs in the suite's venv).
# =============================================================================================
def drift_frame(rows: int, seed: int, scenario: str):
    """The 20 monitored columns: the generator's features, gender and label, and the derived ones."""
    import numpy as np

    from mlops.project.data import generate_data

    df = generate_data(example_project(PROJECT), rows, seed=seed, scenario=scenario)
    out = df[[*GENERATED_NUMERIC, *CATEGORICAL]].copy()
    out["loan_to_income"] = df["loan_amount"] / df["income"]
    out["log_income"] = np.log(df["income"])
    out["utilization_x_late"] = df["credit_utilization"] * df["num_late_payments_12m"]
    out["debt_amount"] = df["debt_to_income"] * df["income"]
    out["income_per_account"] = df["income"] / (df["num_open_accounts"] + 1)
    out["employment_share"] = df["employment_years"] / (df["age"] - 17)
    assert list(out.columns) == list(KINDS), list(out.columns)
    return out


def data_files(sizes: list[int]) -> dict[int, dict[str, Path]]:
    """Write (or reuse) the reference and current Parquet files of each size in bench/out/drift/.

    Reused while the generator's source, this script's data definition and the seeds are the
    same (a stamp beside the files records them); rewritten otherwise.
    """
    import inspect

    project = example_project(PROJECT)
    generator = project.root / project.data_hook.file  # the project's own generator (data.generator)
    spec = {"reference": REFERENCE, "current": CURRENT, "kinds": KINDS,
            "code": hashlib.sha256((generator.read_text()
                                    + inspect.getsource(drift_frame)).encode()).hexdigest()}
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    files = {}
    for rows in sizes:
        files[rows] = {}
        for side, params in (("reference", REFERENCE), ("current", CURRENT)):
            path = DATA_DIR / f"{side}-{rows}.parquet"
            stamp = path.with_suffix(".json")
            want = {**spec, "rows": rows, "side": side}
            if path.exists() and stamp.exists() and json.loads(stamp.read_text()) == want:
                progress(f"reusing {rel(path)}")
            else:
                progress(f"generating {rows:,} rows x {len(KINDS)} columns for the {side} (seed {params['seed']}, "
                         f"scenario {params['scenario']}) -> {rel(path)}")
                drift_frame(rows, params["seed"], params["scenario"]).to_parquet(path, index=False)
                stamp.write_text(json.dumps(want, indent=1))
            files[rows][side] = path
    return files


def run_side(tool: str, label: str, reference: Path, current: Path, profile: Path | None = None) -> dict:
    out, log = OUT_DIR / f"drift-{label}.json", OUT_DIR / f"drift-{label}.log"
    python = str(EV_VENV / "bin" / "python") if tool == "evidently" else sys.executable
    cmd = [python, str(Path(__file__).resolve()), "--worker", tool, "--reference", str(reference),
           "--current", str(current), "--kinds", json.dumps(KINDS), "--out", str(out)]
    if profile is not None:
        cmd += ["--profile", str(profile)]
    return run_worker_process(cmd, out, log, tool, env={**os.environ, **(EV_ENV if tool == "evidently" else {})})


def describe(run: dict) -> str:
    parts = [f"{run['seconds']:.2f} s"]
    if run.get("read_seconds") is not None and run["tool"] == "evidently":
        parts.append(f"read {run['read_seconds']:.2f} s + report {run['run_seconds']:.2f} s")
    parts.append(f"peak RSS {run['peak_rss'] / 2**20:.0f} MiB")
    if "share" in run:
        drifted = sorted(c for c, r in run["columns"].items() if r["drifted"])
        parts.append(f"{len(drifted)} of {len(run['columns'])} columns drifted ({run['share']:.2f})")
    return "; ".join(parts)


# -- comparing the two sides ----------------------------------------------------------------
def compare_sides(ours: dict, ev: dict) -> dict:
    """Per column: same test, |difference| of the values, same verdict; and the overall share."""
    rows, worst, worst_by_method = [], 0.0, {}
    for column in KINDS:
        o, e = ours["columns"].get(column), ev["columns"].get(column)
        if o is None or e is None:
            rows.append({"column": column, "missing": "ours" if o is None else "Evidently"})
            continue
        both = o["value"] is not None and e["value"] is not None
        diff = abs(o["value"] - e["value"]) if both else math.inf
        worst = max(worst, diff)
        worst_by_method[o["method"]] = max(worst_by_method.get(o["method"], 0.0), diff)
        rows.append({"column": column, "kind": KINDS[column], "ours_method": o["method"], "ev_method": e["method"],
                     "ours": o["value"], "ev": e["value"], "diff": diff, "ours_drifted": o["drifted"],
                     "ev_drifted": e["drifted"], "missing_drifted": o["missing_drifted"],
                     "same_method": o["method"] == e["method"], "close": diff <= TOLERANCE,
                     "same_verdict": o["drifted"] == e["drifted"]})
    good = [r for r in rows if "missing" not in r]
    return {"rows": rows, "max_diff": worst, "max_diff_by_method": worst_by_method,
            "same_methods": len(good) == len(rows) and all(r["same_method"] for r in good),
            "close": len(good) == len(rows) and all(r["close"] for r in good),
            "same_verdicts": len(good) == len(rows) and all(r["same_verdict"] for r in good),
            "same_share": ev["share"] is not None and abs(ours["share"] - ev["share"]) < 1e-12,
            "same_dataset_drift": ours["dataset_drift"] == ev["dataset_drift"],
            "ours_share": ours["share"], "ev_share": ev["share"],
            "ours_dataset_drift": ours["dataset_drift"], "ev_dataset_drift": ev["dataset_drift"]}


def agreement_ok(cmp: dict) -> bool:
    return all(cmp[k] for k in ("same_methods", "close", "same_verdicts", "same_share", "same_dataset_drift"))


def describe_agreement(cmp: dict) -> str:
    parts = [("same test on every column" if cmp["same_methods"] else "DIFFERENT tests on some columns"),
             f"max abs difference {cmp['max_diff']:.1e}" + (" (within 1e-6)" if cmp["close"] else " (OVER 1e-6)"),
             ("same drifted columns" if cmp["same_verdicts"] else "DIFFERENT drifted columns"),
             f"share drifted ours {cmp['ours_share']:.2f} / Evidently "
             + (f"{cmp['ev_share']:.2f}" if cmp["ev_share"] is not None else "n/a"),
             f"dataset drift ours {cmp['ours_dataset_drift']} / Evidently {cmp['ev_dataset_drift']}"]
    return "; ".join(parts)


def disagreements(cmp: dict) -> list[str]:
    out = []
    for r in cmp["rows"]:
        if "missing" in r:
            out.append(f"`{r['column']}`: no result from {r['missing']}")
        elif not (r["same_method"] and r["close"] and r["same_verdict"]):
            out.append(f"`{r['column']}` ({r['kind']}): ours {r['ours_method']} = {_fmt(r['ours'])} "
                       f"(drifted {r['ours_drifted']}), Evidently {r['ev_method']} = {_fmt(r['ev'])} "
                       f"(drifted {r['ev_drifted']}), abs difference {r['diff']:.3g}")
    return out


def profile_error(scored: dict, exact: dict) -> dict:
    """Max |profile-based - exact| per method, the column where it is largest, and verdict changes."""
    by_method: dict[str, dict] = {}
    flips = []
    for column, p in scored["columns"].items():
        x = exact["columns"][column]
        if p["value"] is None or x["value"] is None:
            continue
        key = p["method"] if p["method"] == x["method"] else f"{p['method']} vs {x['method']}"
        diff = abs(p["value"] - x["value"])
        entry = by_method.setdefault(key, {"max": -1.0, "column": None, "columns": 0})
        entry["columns"] += 1
        if diff > entry["max"]:
            entry.update(max=diff, column=column, profile=p["value"], exact=x["value"])
        if p["drifted"] != x["drifted"]:
            flips.append(column)
    return {"by_method": by_method, "flips": flips,
            "same_methods": all(scored["columns"][c]["method"] == exact["columns"][c]["method"]
                                for c in scored["columns"])}


# -- reporting ------------------------------------------------------------------------------
def _fmt(value) -> str:
    if value is None:
        return "n/a"
    return f"{value:.6g}" if abs(value) >= 1e-4 or value == 0 else f"{value:.3e}"


def _mib(n: float) -> str:
    return f"{n / 2**20:,.0f}"


def summary(runs: list[dict]) -> dict:
    seconds = [r["seconds"] for r in runs]
    return {"median": statistics.median(seconds), "min": min(seconds), "runs": seconds,
            "peak": max(r["peak_rss"] for r in runs), "before": statistics.median(r["rss_before"] for r in runs),
            "imports": statistics.median(r["import_seconds"] for r in runs)}


def goals(results: dict, largest: int, score: dict | None) -> list[tuple[str, str, str, bool]]:
    out = []
    big = results[largest]
    ours, ev = big["ours_summary"], big.get("ev_summary")
    if ev:
        speedup = ev["median"] / ours["median"]
        cmp = big["comparison"]
        ok = speedup >= 20 and cmp["same_methods"] and cmp["close"]
        out.append((f"{largest:,} x 20: faster than Evidently, same test per column, statistics within 1e-6",
                    ">= 20x, same tests, <= 1e-6",
                    f"{speedup:.1f}x ({ev['median']:.2f} s vs ours {ours['median']:.2f} s; against each of ours' "
                    f"runs " + ", ".join(f"{ev['median'] / x:.1f}x" for x in ours["runs"]) + "); "
                    f"{'same tests' if cmp['same_methods'] else 'different tests'}; max abs difference "
                    f"{cmp['max_diff']:.1e}", ok))
        ratio = ours["peak"] / ev["peak"]
        out.append((f"{largest:,} x 20: peak memory (VmHWM) vs Evidently's", "<= 1/3 (0.33x)",
                    f"{ratio:.2f}x ({_mib(ours['peak'])} vs {_mib(ev['peak'])} MiB)", ratio <= 1 / 3))
    if score:
        s = score["summary"]
        out.append((f"stored profile: score a {score['window_rows']:,}-row window (load profile, summarise, compare)",
                    "<= 0.5 s", f"{s['median']:.2f} s (median of {len(s['runs'])}; best {s['min']:.2f} s)",
                    s["median"] <= 0.5))
    return out


def section_text(results: dict, sizes: list[int], score: dict | None, env: dict, started: datetime,
                 load: tuple, repeats: int) -> str:
    m = machine()
    largest = max(sizes)
    any_ev = next((r["ev_runs"][0] for r in results.values() if r.get("ev_runs")), None)
    ours_v = results[largest]["ours_runs"][0]["versions"]
    data = results[largest]
    lines = [SECTION, "",
             f"- date: {started.strftime('%Y-%m-%d %H:%M UTC')}",
             f"- machine: {m['platform']}; {m['cpu']}; {m['memory']} RAM; Python {m['python']}",
             f"- versions: ours mlops-suite {ours_v['mlops-suite']} (pandas {ours_v['pandas']}, pyarrow "
             f"{ours_v['pyarrow']}, numpy {ours_v['numpy']}, scipy {ours_v['scipy']}); "
             + (f"Evidently {any_ev['versions']['evidently']} in its own venv `bench/.venv-evidently` from "
                f"`bench/{env['source']}` (pandas {any_ev['versions']['pandas']}, pyarrow "
                f"{any_ev['versions']['pyarrow']}, numpy {any_ev['versions']['numpy']}, scipy "
                f"{any_ev['versions']['scipy']})" if any_ev else
                f"Evidently not installed from `bench/{env['source']}` (see below)"),
             "- data: 20 columns, reference "
             + generator_call(example_project(PROJECT), "rows", REFERENCE["seed"]).split(" (")[0]
             + ", current "
             + generator_call(example_project(PROJECT), "rows", CURRENT["seed"], CURRENT["scenario"])
             + ", at "
             + " and ".join(f"{n:,}" for n in sizes) + " rows each, written once to Parquet in `bench/out/drift/` "
             f"({data['bytes'] / 2**20:.1f} MiB for the {largest:,}-row pair) and read by every worker; numeric: "
             + ", ".join(GENERATED_NUMERIC) + ", and derived "
             + ", ".join(f"{c} (`{f}`)" for c, f in DERIVED.items())
             + "; categorical: " + ", ".join(CATEGORICAL) + " (the label, 0/1); declared to both tools",
             f"- repeats: ours {repeats} per size, Evidently {repeats} at 100,000 rows and once at {largest:,} "
             f"(about a minute each), each a fresh worker process; command: `.venv/bin/python bench/bench_drift.py`"
             if largest > SMALL_ROWS else
             f"- repeats: {repeats} of each, each a fresh worker process; command: "
             f"`.venv/bin/python bench/bench_drift.py --rows {largest}`",
             f"- load average (1 min) before / after the measurements: {load[0][0]:.2f} / {load[1][0]:.2f} "
             f"(2 CPUs shared with other work: it slows both sides, so compare ratios from quiet runs)",
             ""]
    if not any_ev:
        lines += [f"**Evidently could not be run**: {env.get('error', 'see the log')}", ""]
    lines += ["| tool | size (rows x columns, each file) | median (s) | min (s) | peak RSS (MiB) "
              "| speedup vs Evidently |",
              "|---|---|---:|---:|---:|---:|"]
    for rows in sizes:
        r = results[rows]
        ours, ev = r["ours_summary"], r.get("ev_summary")
        speed = f"**{ev['median'] / ours['median']:.1f}x**" if ev else "n/a"
        lines.append(f"| ours `compare_parquet` (pyarrow, one thread) | {rows:,} x 20 | {ours['median']:.2f} | "
                     f"{ours['min']:.2f} | {_mib(ours['peak'])} | {speed} |")
        if ev:
            lines.append(f"| Evidently {any_ev['versions']['evidently']} `DataDriftPreset` (pandas) | {rows:,} x 20 | "
                         f"{ev['median']:.2f} | {ev['min']:.2f} | {_mib(ev['peak'])} | 1.0x |")
    if score:
        s, b = score["summary"], score["build"]
        lines.append(f"| ours, stored profile: build it from the {largest:,}-row reference (`profile_parquet` + "
                     f"`save`) | {largest:,} x 20 | {b['seconds']:.2f} | {b['seconds']:.2f} | "
                     f"{_mib(b['peak_rss'])} | |")
        lines.append(f"| ours, stored profile: score a window (`Profile.load`, `read_parquet`, `of_frame`, "
                     f"`compare`) | {score['window_rows']:,} x 20 | {s['median']:.2f} | {s['min']:.2f} | "
                     f"{_mib(s['peak'])} | |")
    lines.append("")

    verdicts = goals(results, largest, score)
    if verdicts:
        lines += ["| goal | target | measured | verdict |", "|---|---|---|---|"]
        lines += [f"| {g} | {t} | {mv} | **{'PASS' if ok else 'MISS'}** |" for g, t, mv, ok in verdicts]
        met = sum(ok for *_, ok in verdicts)
        lines += ["", f"**{met} of {len(verdicts)} goals met in this run.**", ""]

    # Agreement.
    for rows in sizes:
        r = results[rows]
        if r.get("comparison"):
            cmp = r["comparison"]
            lines += [f"**Same answers at {rows:,} rows:** {describe_agreement(cmp)}."
                      + ("" if agreement_ok(cmp) else " Where they differ: " + "; ".join(disagreements(cmp)) + "."),
                      ""]
    cmp = data.get("comparison")
    if cmp:
        lines += [f"Per column at {largest:,} rows (value: the p-value for `ks`/`chisquare`/`z`, the distance "
                  "for the others; drifted: ours / Evidently; missing-rate drift is ours only, Evidently drops "
                  "missing values before testing):", "",
                  "| column | kind | test (ours / Evidently) | ours | Evidently | abs difference | drifted | "
                  "missing-rate drift (ours) |",
                  "|---|---|---|---:|---:|---:|---|---|"]
        for r in cmp["rows"]:
            if "missing" in r:
                lines.append(f"| {r['column']} | | no result from {r['missing']} | | | | | |")
                continue
            test = r["ours_method"] if r["same_method"] else f"{r['ours_method']} / {r['ev_method']}"
            drifted = ("yes" if r["ours_drifted"] else "no") + " / " + ("yes" if r["ev_drifted"] else "no")
            lines.append(f"| {r['column']} | {r['kind']} | {test} | {_fmt(r['ours'])} | {_fmt(r['ev'])} | "
                         f"{r['diff']:.1e} | {drifted} | {'yes' if r['missing_drifted'] else 'no'} |")
        lines.append("")

    if score:
        err, b, s = score["error"], score["build"], score["summary"]
        runs = score["runs"]
        exact_cols = runs[0]["exact"]
        med = {k: statistics.median(r[k] for r in runs)
               for k in ("load_seconds", "read_seconds", "summarise_seconds", "compare_seconds", "import_seconds")}
        lines += [f"**Stored reference profile.** `profile_parquet` over the {largest:,}-row reference took "
                  f"{b['seconds']:.2f} s (peak RSS {_mib(b['peak_rss'])} MiB) and wrote "
                  f"{b['profile_bytes'] / 2**20:.2f} MiB of JSON: categorical columns as their counts, numeric "
                  "ones as their distinct values with counts where they have at most 20,000 (exact: "
                  + ", ".join(f"{c} {n:,}" for c, n in b["points"].items() if exact_cols.get(c)) + ") and "
                  "otherwise as 20,000 weighted points of equal mass ("
                  + ", ".join(c for c in b["points"] if not exact_cols.get(c)) + "). Scoring the "
                  f"{score['window_rows']:,}-row current window against it in a fresh process took "
                  + ", ".join(f"{x:.2f}" for x in s["runs"]) + f" s (median {s['median']:.2f} s: load the profile "
                  f"{med['load_seconds']:.3f} s, read the window's Parquet {med['read_seconds']:.3f} s, summarise it "
                  f"exactly (`of_frame`, `max_points=None`) {med['summarise_seconds']:.3f} s, compare "
                  f"{med['compare_seconds']:.3f} s; imports {med['import_seconds']:.2f} s "
                  f"not counted); peak RSS {_mib(s['peak'])} MiB.", ""]
        lines += [f"How far the profile-based statistics are from the exact ones (ours `compare_parquet` on the "
                  f"{largest:,}-row reference file and the same window: the exact computation that agrees with "
                  "Evidently above):", "",
                  "| test | columns | max abs difference | where (profile / exact) |", "|---|---:|---:|---|"]
        for method, e in sorted(err["by_method"].items()):
            lines.append(f"| {method} | {e['columns']} | {e['max']:.1e} | {e['column']} "
                         f"({_fmt(e.get('profile'))} / {_fmt(e.get('exact'))}) |")
        lines += ["", ("The same test on every column" if err["same_methods"] else "A DIFFERENT test on some column")
                  + " and " + ("the same drifted columns as the exact comparison." if not err["flips"] else
                               "a different verdict on " + ", ".join(err["flips"]) + ".")
                  + " Counts are kept whole, so only the compressed numeric columns move: their Wasserstein "
                  "distance through the points' slice means (the mean and the standard deviation that norms it "
                  "stay exact): by the triangle inequality it moves by at most the distance between the "
                  "reference and its points, the mean distance of a reference value from its slice's mean (in "
                  "standard deviations).", ""]

    # Spread and what is measured.
    spread = []
    for rows in sizes:
        r = results[rows]
        spread.append(f"{rows:,} rows: ours " + ", ".join(f"{x:.2f}" for x in r["ours_summary"]["runs"])
                      + ("; Evidently " + ", ".join(
                          f"{x['seconds']:.2f} (read {x['read_seconds']:.2f} + report {x['run_seconds']:.2f})"
                          for x in r["ev_runs"]) if r.get("ev_runs") else ""))
    ev_imports = next((results[n]["ev_summary"]["imports"] for n in sizes if results[n].get("ev_summary")), None)
    lines += ["Every repetition (s), to judge the spread: " + "; ".join(spread) + ". Not in any number above: "
              f"process start-up and imports (ours {results[largest]['ours_summary']['imports']:.2f} s"
              + (f", Evidently {ev_imports:.2f} s" if ev_imports is not None else "")
              + "), and Evidently's `snapshot.dict()` to read its results out ("
              + (", ".join(f"{results[n]['ev_runs'][0]['extract_seconds']:.2f} s at {n:,}" for n in sizes
                           if results[n].get("ev_runs")) or "n/a")
              + ")" + (f"; building Evidently's venv took {env['seconds']:.0f} s this time" if env.get("built")
                       and env["ok"] else "; Evidently's venv already existed for the same lock") + ". Peak RSS "
              "is each worker's own high-water mark (`VmHWM`, interpreter and imports included; after imports, "
              f"before reading at {largest:,} rows: ours {_mib(data['ours_summary']['before'])} MiB"
              + (f", Evidently {_mib(data['ev_summary']['before'])} MiB" if data.get("ev_summary") else "") + ").", ""]
    lines += ["What is measured: each run is a fresh worker process (this script with `--worker`) that reads "
              "both Parquet files from the page cache itself. **Ours** times the one call "
              "`compare_parquet(reference, current, kinds, workers=1)`: it reads one column at a time with "
              "pyarrow, summarises it (sorted values, as distinct values with counts when they repeat, for "
              "numeric columns; counts of the dictionary-encoded values for categorical ones), chooses "
              "the test as Evidently does and computes it; one thread, as Evidently uses one. **Evidently** "
              "times `pandas.read_parquet` of both files (the 20 columns) plus `Dataset.from_pandas` with a "
              "`DataDefinition` naming the same numeric and categorical columns and "
              "`Report([DataDriftPreset()], include_tests=True).run(current, reference)` (the tests give its "
              "per-column and dataset verdicts; the values are its `ValueDrift` metrics, the test its "
              "`method` mapped back to the stattest id through its registry, the share its "
              "`DriftedColumnsCount`). Speedups are ratios of medians (at 1M rows Evidently runs once). "
              "Both use their defaults: the test chosen per column by type, reference size and distinct "
              "values (Wasserstein normed by the reference's standard deviation for numeric columns with more "
              "than 5 distinct values, Jensen-Shannon otherwise, as both references have over 1,000 rows), "
              "thresholds 0.1, dataset drift at a share of 0.5. **Stored profile**: `profile_parquet` (batches "
              "of 262,144 rows, merged; 20,000 points per numeric column) and `save` in one worker; scoring in "
              "another, timed from `Profile.load` to the report.", ""]
    return "\n".join(lines)


# -- main -----------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=FULL_ROWS,
                        help=f"the largest size (default {FULL_ROWS:,}, plus {SMALL_ROWS:,}); with {SMALL_ROWS:,} "
                             "or fewer, one size only, a quick run; RESULTS.md is written only for the default")
    parser.add_argument("--repeats", type=int, default=3,
                        help="repetitions of ours, of Evidently up to 100,000 rows and of the profile scoring "
                             "(default 3; Evidently runs once above 100,000 rows)")
    parser.add_argument("--quick", action="store_true",
                        help=f"a check, not a measurement: {QUICK_ROWS:,} rows, one repetition, ours only (no "
                             "Evidently venv), data and worker files in a temporary directory, RESULTS.md untouched")
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    for hidden in ("--reference", "--current", "--profile", "--kinds", "--out"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return run_worker(args)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    if not 1_000 <= args.rows <= FULL_ROWS:
        parser.error(f"--rows must be between 1,000 and {FULL_ROWS:,}")
    if args.quick:
        args.rows, args.repeats = QUICK_ROWS, 1
        with work_dir("mlops-bench-drift-", False, "data") as work:
            _set_dirs(work / "out")
            return _run(args, datetime.now(timezone.utc))
    return _run(args, datetime.now(timezone.utc))


def _set_dirs(out_dir: Path) -> None:
    """Where the data and the workers' files go (a --quick run: its temporary directory)."""
    global OUT_DIR, DATA_DIR
    OUT_DIR, DATA_DIR = out_dir, out_dir / "drift"


def _run(args, started: datetime) -> int:
    env = (ensure_side_env(EV_VENV, EV_REQUIREMENTS, EV_LOCK, "Evidently") if not args.quick else
           {"ok": False, "built": False, "seconds": 0.0, "source": EV_LOCK.name, "error": "--quick: Evidently not run"})
    if env["ok"]:
        progress(f"Evidently environment ready ({'built in %.0f s' % env['seconds'] if env['built'] else 'reused'})")
    else:
        progress(f"Evidently could not be installed; only our side is measured:\n{env['error']}")
    sizes = sorted({min(SMALL_ROWS, args.rows), args.rows})
    largest = max(sizes)
    files = data_files(sizes)

    results: dict[int, dict] = {}
    load_before = os.getloadavg()
    for rows in sizes:
        ref, cur = files[rows]["reference"], files[rows]["current"]
        ev_repeats = (args.repeats if rows <= SMALL_ROWS else 1) if env["ok"] else 0
        ours_runs, ev_runs = [], []
        for rep in range(1, args.repeats + 1):
            progress(f"{rows:,} rows [{rep}/{args.repeats}] ours: compare_parquet ...")
            ours_runs.append(run_side("ours", f"ours-{rows}-{rep}", ref, cur))
            progress(f"  {describe(ours_runs[-1])}")
            if rep <= ev_repeats:
                progress(f"{rows:,} rows [{rep}/{ev_repeats}] Evidently: read_parquet + DataDriftPreset ...")
                ev_runs.append(run_side("evidently", f"evidently-{rows}-{rep}", ref, cur))
                progress(f"  {describe(ev_runs[-1])}")
        r = results[rows] = {"ours_runs": ours_runs, "ours_summary": summary(ours_runs),
                             "bytes": ref.stat().st_size + cur.stat().st_size}
        if ev_runs:
            r.update(ev_runs=ev_runs, ev_summary=summary(ev_runs), comparison=compare_sides(ours_runs[0], ev_runs[0]))
            progress(f"  {rows:,} rows: {describe_agreement(r['comparison'])}")
            for line in disagreements(r["comparison"]):
                progress(f"  differs: {line}")

    # The stored-profile path: build from the largest reference, score the small current window.
    profile = DATA_DIR / f"reference-{largest}.profile.json"
    window = files[min(sizes)]["current"]
    progress(f"building the stored profile from {rel(files[largest]['reference'])} ...")
    build = run_side("profile-build", f"profile-build-{largest}", files[largest]["reference"], window, profile)
    progress(f"  {build['seconds']:.2f} s, {build['profile_bytes'] / 2**20:.2f} MiB, peak RSS "
             f"{build['peak_rss'] / 2**20:.0f} MiB")
    score_runs = []
    for rep in range(1, args.repeats + 1):
        progress(f"[{rep}/{args.repeats}] scoring the {min(sizes):,}-row window against the stored profile ...")
        score_runs.append(run_side("profile-score", f"profile-score-{rep}", files[largest]["reference"], window,
                                   profile))
        progress(f"  {describe(score_runs[-1])}")
    progress("exact statistics for the same window (compare_parquet on the reference file) ...")
    exact = (results[largest]["ours_runs"][0] if min(sizes) == largest else
             run_side("ours", "ours-window-exact", files[largest]["reference"], window))
    load = (load_before, os.getloadavg())
    score = {"build": build, "runs": score_runs, "summary": summary(score_runs), "window_rows": min(sizes),
             "error": profile_error(score_runs[0], exact)}
    for method, e in sorted(score["error"]["by_method"].items()):
        progress(f"  profile vs exact, {method}: max abs difference {e['max']:.2e} ({e['column']})")

    section = section_text(results, sizes, score, env, started, load, args.repeats)
    print()
    print(section)
    if largest == FULL_ROWS:
        write_results(section, SECTION)
        progress(f"wrote {rel(RESULTS)}")
    else:
        progress(f"{largest:,} rows is not the benchmark's {FULL_ROWS:,}: RESULTS.md left as it is")
    return 0


if __name__ == "__main__":
    sys.exit(main())
