"""Benchmark: data validation throughput, ours vs. Great Expectations, on 1M rows x 20 columns.

``make bench`` runs ``.venv/bin/python bench/bench_validation.py``. It

1. builds Great Expectations' own virtualenv ``bench/.venv-gx`` from
   ``bench/gx-requirements.lock`` (hash-checked; GX is a benchmark-only
   dependency kept apart from the suite's pinned stack) unless it is already
   there for the same lock;
2. generates 1,000,000 rows with the credit-default example's generator
   (``generate_data(project, 1_000_000, seed=42)``, examples/credit-default/data.py;
   17 columns) plus 3 derived numeric columns (20 in all) and writes them to
   one Parquet file in a temporary directory; writes a broken copy too (the
   ``wrong_units`` scenario: income in thousands);
3. infers the data contract from the clean frame (``infer_contract`` +
   ``write_contract_files``, so the reference profile exists and the drift
   checks run) and translates it into the equivalent Great Expectations
   suite;
4. validates the clean file REPEATS times with each tool, alternating, every
   run in a fresh subprocess (ours in the suite's venv, GX in its own), each
   measured from the Parquet file: ``mlops.validation.checks.validate_parquet`` reads
   it itself; GX gets ``pandas.read_parquet`` of it (timed separately and
   included in its total) and ``batch.validate(suite)``; each process reports
   its own peak RSS (``VmHWM`` from ``/proc/self/status``);
5. validates the broken copy once with each as a sanity check that both flag
   the same breakage;
6. prints a table and writes it into bench/RESULTS.md (only this benchmark's
   section is replaced; other benchmarks keep theirs).

This is a benchmark, not a test: it asserts nothing about speed.

``--quick`` checks the script end to end: 20,000 rows, one repetition, our
side only (no GX venv is built), worker files in the temporary directory,
RESULTS.md and bench/out untouched.

The same file is the worker of both sides (``--worker ours|gx``); the worker
imports nothing but the standard library at the top, so it runs in GX's venv
where neither the suite nor psutil is installed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

# bench/common.py: bench/ is on sys.path when this file is run as a script, not when it is imported by path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (RESULTS, ensure_side_env, example_project, generator_call, machine, peak_rss_bytes,  # noqa: E402
                    progress, rel, run_worker_process, work_dir, write_results)

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / "bench"
OUT_DIR = BENCH_DIR / "out"  # the workers' JSON and logs (a --quick run's stay in its temporary directory)
SECTION = "## Data validation (1M rows x 20 columns)"

FULL_ROWS = ROWS = 1_000_000
QUICK_ROWS = 20_000
PROJECT = "credit-default"  # the example whose generator makes the data (the derived columns are its own)
SEED = 42
BROKEN_SCENARIO = "wrong_units"
DUPLICATED_KEYS = 1_000  # the broken copy also repeats this many customer_ids
DERIVED = ("loan_to_income", "log_income", "utilization_x_late")

GX_VENV = BENCH_DIR / ".venv-gx"
GX_REQUIREMENTS = BENCH_DIR / "gx-requirements.txt"
GX_LOCK = BENCH_DIR / "gx-requirements.lock"
# GX 1.x sends usage analytics unless told not to; a benchmark must not talk to the network.
GX_ENV = {"GX_ANALYTICS_ENABLED": "false"}

# Great Expectations' names of the dtypes each contract type accepts (in_type_list compares the
# pandas dtype for non-object columns; for object columns it checks each value's Python type).
INT_TYPES = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]
FLOAT_TYPES = ["float16", "float32", "float64", *INT_TYPES]


# =============================================================================================
# Workers: one validation in a fresh process, reporting timings, peak RSS and the verdict.
# =============================================================================================
def worker_ours(args) -> dict:
    t0 = time.perf_counter()
    from mlops.validation.checks import validate_parquet
    from mlops.validation.contract import load_contract

    imports = time.perf_counter() - t0
    contract = load_contract(args.contract)
    rss_before = peak_rss_bytes()
    start = time.perf_counter()
    result = validate_parquet(args.data, contract)
    seconds = time.perf_counter() - start
    failed = {}
    for f in result.findings:
        key = f"{f.family}:{f.column or '*'}"
        failed.setdefault(key, []).append({"check": f.check, "severity": f.severity, "observed": _plain(f.observed)})
    return {"tool": "ours", "rows": result.rows, "read_seconds": None, "validate_seconds": seconds,
            "total_seconds": seconds, "import_seconds": imports, "setup_seconds": None,
            "rss_before": rss_before, "peak_rss": peak_rss_bytes(), "passed": result.passed,
            "errors": len(result.errors), "warnings": len(result.warnings), "failed": failed,
            "summary": result.summary()}


def _plain(value):
    """A JSON-friendly copy of a finding's observed value (numpy scalars, lists of them)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value][:10]
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, float) and value != value:  # NaN
        return None
    return value


def worker_gx(args) -> dict:
    t0 = time.perf_counter()
    import great_expectations as gx
    import great_expectations.expectations as gxe
    import pandas as pd
    from great_expectations.data_context.types.base import ProgressBarsConfig

    imports = time.perf_counter() - t0
    spec = json.loads(Path(args.expectations).read_text())
    by_type = {cls.expectation_type: cls for cls in vars(gxe).values()
               if isinstance(cls, type) and isinstance(getattr(cls, "expectation_type", None), str)}

    start = time.perf_counter()
    context = gx.get_context(mode="ephemeral")
    # No progress bars in the logs (they cost GX a little, never us).
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    source = context.data_sources.add_pandas("bench")
    asset = source.add_dataframe_asset("frame")
    batch_definition = asset.add_batch_definition_whole_dataframe("whole")
    expectations = [by_type[e["type"]](**e["kwargs"], meta=e["meta"], severity=e["severity"])
                    for e in spec["expectations"]]
    suite = context.suites.add(gx.ExpectationSuite(name=spec["name"], expectations=expectations))
    setup = time.perf_counter() - start

    rss_before = peak_rss_bytes()
    start = time.perf_counter()
    df = pd.read_parquet(args.data)
    read = time.perf_counter() - start
    start = time.perf_counter()
    batch = batch_definition.get_batch(batch_parameters={"dataframe": df})
    outcome = batch.validate(suite)
    validate = time.perf_counter() - start

    failed, raised = {}, []
    for r in outcome.results:
        meta = r.expectation_config.meta or {}
        info = r.exception_info or {}
        exc = info.get("raised_exception") if "raised_exception" in info else \
            any(isinstance(v, dict) and v.get("raised_exception") for v in info.values())
        if exc:
            raised.append(f"{r.expectation_config.type}({meta.get('column')}): {info}")
        if not r.success:
            result = r.result or {}
            observed = result.get("unexpected_count", result.get("observed_value"))
            key = f"{meta.get('family')}:{meta.get('column') or '*'}"
            failed.setdefault(key, []).append({"check": r.expectation_config.type,
                                               "severity": _severity(r.expectation_config),
                                               "observed": _plain(observed)})
    worst = outcome.get_max_severity_failure()
    worst = getattr(worst, "value", worst)
    return {"tool": "gx", "rows": len(df), "read_seconds": read, "validate_seconds": validate,
            "total_seconds": read + validate, "import_seconds": imports, "setup_seconds": setup,
            "rss_before": rss_before, "peak_rss": peak_rss_bytes(),
            # GX's own flag is False on any failed expectation, warnings included; the verdict that
            # matches ours (errors fail, warnings do not) is "no failed critical expectation".
            "gx_success": bool(outcome.success), "max_failed_severity": worst,
            "passed": worst != "critical", "expectations": len(outcome.results),
            "failed_expectations": sum(1 for r in outcome.results if not r.success),
            "failed": failed, "raised": raised, "version": gx.__version__}


def _severity(config) -> str:
    value = getattr(config, "severity", None)
    if value is None and hasattr(config, "get"):
        value = config.get("severity")
    return str(getattr(value, "value", value))


def run_worker(args) -> int:
    result = (worker_ours if args.worker == "ours" else worker_gx)(args)
    Path(args.out).write_text(json.dumps(result, indent=1))
    return 0


# =============================================================================================
# The benchmark itself (runs in the suite's venv).
# =============================================================================================
def bench_frame(scenario: str = "none", duplicate_keys: int = 0):
    """The generator's 17 columns plus 3 derived numeric ones: 20 columns.

    With ``duplicate_keys``, rows n+1..2n get the customer_id (the project's entity key) of rows 1..n.
    """
    import numpy as np

    from mlops.project.data import generate_data

    project = example_project(PROJECT)
    df = generate_data(project, ROWS, seed=SEED, scenario=scenario)
    # Derived the way a feature feed would derive them (so a broken input breaks them too).
    df["loan_to_income"] = df["loan_amount"] / df["income"]
    df["log_income"] = np.log(df["income"])
    df["utilization_x_late"] = df["credit_utilization"] * df["num_late_payments_12m"]
    assert df.shape[1] == 20, df.shape
    if duplicate_keys:
        key = project.entity.key
        ids = df[key].to_numpy(copy=True)
        ids[duplicate_keys:2 * duplicate_keys] = ids[:duplicate_keys]
        df[key] = ids
    return df


def gx_expectations(contract, reference: dict) -> tuple[list[dict], list[str]]:
    """The contract as Great Expectations expectations; and notes on what could not be mapped.

    Each expectation's meta names the check family and column of ours it stands for; its
    severity is the contract's severity of that family (error -> critical, warning -> warning).
    """
    import numpy as np

    from mlops.stats.summaries import NumericSummary

    severity = {"error": "critical", "warning": "warning"}
    expectations, notes = [], []

    def add(expectation: str, family: str, column: str | None, **kwargs) -> None:
        kw = {"column": column, **kwargs} if column is not None else kwargs
        expectations.append({"type": expectation, "kwargs": kw, "meta": {"family": family, "column": column},
                             "severity": severity[contract.severity[family]]})

    add("expect_table_row_count_to_be_between", "rows", None,
        min_value=contract.min_rows, max_value=contract.max_rows)
    if not contract.allow_extra_columns:
        add("expect_table_columns_to_match_set", "schema", None, column_set=list(contract.columns),
            exact_match=True)
    if len(contract.key) == 1:
        add("expect_column_values_to_be_unique", "key", contract.key[0])
    elif contract.key:
        expectations.append({"type": "expect_compound_columns_to_be_unique",
                             "kwargs": {"column_list": list(contract.key)},
                             "meta": {"family": "key", "column": ",".join(contract.key)},
                             "severity": severity[contract.severity["key"]]})
    for name, spec in contract.columns.items():
        add("expect_column_to_exist", "schema", name)
        if spec.type == "integer":
            add("expect_column_values_to_be_in_type_list", "schema", name, type_list=INT_TYPES)
        elif spec.type == "float":
            add("expect_column_values_to_be_in_type_list", "schema", name, type_list=FLOAT_TYPES)
        elif spec.type in ("string", "category"):
            add("expect_column_values_to_be_of_type", "schema", name, type_="str")
        elif spec.type == "boolean":
            add("expect_column_values_to_be_in_type_list", "schema", name, type_list=["bool", "boolean"])
        else:  # timestamp: tz-aware datetime64 columns have dtype.type pandas.Timestamp
            add("expect_column_values_to_be_of_type", "schema", name, type_="Timestamp")
        if not spec.nullable:
            add("expect_column_values_to_not_be_null", "missing", name)
        elif spec.max_missing < 1.0:
            add("expect_column_values_to_not_be_null", "missing", name, mostly=round(1.0 - spec.max_missing, 10))
        if spec.numeric and (spec.min is not None or spec.max is not None):
            add("expect_column_values_to_be_between", "range", name, min_value=spec.min, max_value=spec.max)
        if spec.values is not None:
            add("expect_column_values_to_be_in_set", "category", name, value_set=list(spec.values))
        rule = contract.drift_rule(spec)
        ref = reference.get(name)
        if rule is None or ref is None:
            continue
        method, threshold = rule
        # GX's closest check is the KL divergence KL(batch || reference) over the reference's
        # partition. Thresholds are converted with the small-difference approximations:
        # PSI = KL(b||r) + KL(r||b) ~ 2 KL; Jensen-Shannon distance d: JSD = d^2 ~ KL / 4.
        if method == "psi":
            kl = threshold / 2
        elif method == "jensenshannon":
            kl = 4 * threshold ** 2
        else:
            notes.append(f"{name}: drift method {method} has no GX counterpart here; left out on the GX side")
            continue
        if isinstance(ref, NumericSummary):
            # The reference's deciles as GX's partition (open outer bins), from its summary's weighted points.
            weights = ref.point_weights()
            inner = np.unique(np.interp(np.linspace(0, 1, 11)[1:-1] * weights.sum(), np.cumsum(weights), ref.values))
            edges = np.r_[-np.inf, inner, np.inf]
            counts = np.histogram(ref.values, edges, weights=weights)[0]
            partition = {"bins": [float(e) for e in edges], "weights": (counts / counts.sum()).tolist()}
        else:
            keys = sorted(ref.counts)
            counts = np.asarray([ref.counts[k] for k in keys], dtype=float)
            partition = {"values": keys, "weights": (counts / counts.sum()).tolist()}
        add("expect_column_kl_divergence_to_be_less_than", "drift", name, partition_object=partition,
            threshold=round(kl, 10))
    return expectations, notes


def row_group_shape(path: Path) -> tuple[int, int]:
    """Number of row groups in a Parquet file and the rows of its largest."""
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata
    return meta.num_row_groups, max((meta.row_group(i).num_rows for i in range(meta.num_row_groups)), default=0)


# -- the GX environment ---------------------------------------------------------------------
def ensure_gx_env() -> dict:
    """Build (or reuse) bench/.venv-gx from its lock; returns what happened, or the exact error."""
    return ensure_side_env(GX_VENV, GX_REQUIREMENTS, GX_LOCK, "Great Expectations")


# -- running the workers ------------------------------------------------------------------
def run_side(tool: str, data: Path, contract_path: Path, expectations_path: Path, label: str,
             out_dir: Path = OUT_DIR) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"validation-{label}.json"
    log = out_dir / f"validation-{label}.log"
    python = sys.executable if tool == "ours" else str(GX_VENV / "bin" / "python")
    cmd = [python, str(Path(__file__).resolve()), "--worker", tool, "--data", str(data), "--out", str(out)]
    cmd += ["--contract", str(contract_path)] if tool == "ours" else ["--expectations", str(expectations_path)]
    return run_worker_process(cmd, out, log, tool, env={**os.environ, **(GX_ENV if tool == "gx" else {})})


def describe(run: dict) -> str:
    parts = [f"total {run['total_seconds']:.2f} s"]
    if run["read_seconds"] is not None:
        parts.append(f"read {run['read_seconds']:.2f} s + validate {run['validate_seconds']:.2f} s")
    parts.append(f"peak RSS {run['peak_rss'] / 2**20:.0f} MiB")
    parts.append("PASSED" if run["passed"] else "FAILED")
    if run["tool"] == "gx":
        parts.append(f"{run['failed_expectations']}/{run['expectations']} expectations failed")
    else:
        parts.append(f"{run['errors']} errors, {run['warnings']} warnings")
    return "; ".join(parts)


# -- reporting ------------------------------------------------------------------------------
def versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for name in ("mlops-suite", "pyarrow", "pandas", "numpy"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    if out["mlops-suite"] == "not installed":
        import mlops

        out["mlops-suite"] = mlops.__version__
    return out


def summarize(ours: list[dict], gx: list[dict]) -> list[dict]:
    rows = []
    ours_med = statistics.median(r["total_seconds"] for r in ours)
    for name, runs in (("ours", ours), ("gx", gx)):
        if not runs:
            continue
        med = statistics.median(r["total_seconds"] for r in runs)
        reads = [r["read_seconds"] for r in runs if r["read_seconds"] is not None]
        rows.append({"name": name, "median": med, "min": min(r["total_seconds"] for r in runs),
                     "read": statistics.median(reads) if reads else None,
                     "validate": statistics.median(r["validate_seconds"] for r in runs),
                     "rows_per_s": ROWS / med, "peak_rss": max(r["peak_rss"] for r in runs),
                     "ratio": med / ours_med})
    return rows


def table(rows: list[dict], gx_version: str | None) -> str:
    label = {"ours": "mlops `validate_parquet` (streaming, pyarrow)",
             "gx": f"Great Expectations {gx_version} (pandas)"}
    lines = ["| tool | median (s) | min (s) | Parquet read (s) | validation (s) | rows/s | peak RSS (MiB) "
             "| time vs ours |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        read = "in the pass" if r["read"] is None else f"{r['read']:.2f}"
        lines.append(f"| {label[r['name']]} | {r['median']:.2f} | {r['min']:.2f} | {read} | {r['validate']:.2f} "
                     f"| {r['rows_per_s']:,.0f} | {r['peak_rss'] / 2**20:,.0f} | {r['ratio']:.2f}x |")
    return "\n".join(lines)


def compare_counts(ours: dict, gx: dict | None) -> list[str]:
    """For the count-based findings both made: are the counts the same?"""
    out = []
    for key in sorted(set(ours["failed"]) & set(gx["failed"] if gx else {})):
        family, column = key.split(":", 1)
        if family not in ("range", "category", "missing", "key"):
            continue
        o = sum(f["observed"] for f in ours["failed"][key] if isinstance(f["observed"], int))
        g = sum(f["observed"] for f in gx["failed"][key] if isinstance(f["observed"], int))
        out.append(f"{family} {column}: ours {o:,}, GX {g:,}" + (" (equal)" if o == g else ""))
    return out


def compare_broken(ours: dict, gx: dict | None) -> tuple[bool, list[str]]:
    """Do both flag the same (family, column) pairs on the broken copy? With the details."""
    lines = []
    ours_keys, gx_keys = set(ours["failed"]), set(gx["failed"]) if gx else set()
    for key in sorted(ours_keys | gx_keys):
        family, column = key.split(":", 1)
        o = "; ".join(f"`{f['check']}` ({f['severity']}, observed {_short(f['observed'])})"
                      for f in ours["failed"].get(key, [])) or "not flagged"
        g = "; ".join(f"`{f['check']}` ({f['severity']}, observed {_short(f['observed'])})"
                      for f in (gx["failed"].get(key, []) if gx else [])) or "not flagged"
        lines.append(f"| {family} | {column} | {o} | {g} |")
    return ours_keys == gx_keys, lines


def _short(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if value is None:
        return "n/a (infinite)"
    return str(value)


def expectation_list(expectations: list[dict]) -> list[str]:
    counts: dict[str, list[str]] = {}
    for e in expectations:
        counts.setdefault(e["type"], []).append(e["meta"]["column"] or "*")
    ours_check = {
        "expect_table_row_count_to_be_between": "`rows.empty`, `rows.count`",
        "expect_table_columns_to_match_set": "`schema.missing_column`, `schema.extra_column` (exact column set)",
        "expect_column_to_exist": "`schema.missing_column`",
        "expect_column_values_to_be_unique": "`key.duplicate`",
        "expect_compound_columns_to_be_unique": "`key.duplicate`",
        "expect_column_values_to_be_in_type_list": "`schema.type` (integer and float columns)",
        "expect_column_values_to_be_of_type": "`schema.type` (`str` for string and category columns, "
                                              "`Timestamp` for timestamps)",
        "expect_column_values_to_not_be_null": "`missing.not_nullable`, `missing.fraction` (`mostly` for "
                                               "nullable columns)",
        "expect_column_values_to_be_between": "`range.below_min`, `range.above_max`",
        "expect_column_values_to_be_in_set": "`category.unknown`",
        "expect_column_kl_divergence_to_be_less_than": "`drift.distribution` (see below)",
    }
    out = []
    for type_, cols in counts.items():
        shown = ", ".join(cols) if len(cols) <= 6 else f"{len(cols)} columns"
        out.append(f"- `{type_}` x {len(cols)} ({shown}) <-> ours {ours_check.get(type_, '?')}")
    return out


def section_text(rows, ours_runs, gx_runs, broken, env, notes, expectations, contract, started, load,
                 data_bytes, repeats, gx_repeats, timing_notes, row_groups: int, group_rows: int) -> str:
    m, v = machine(), versions()
    gx_version = gx_runs[0]["version"] if gx_runs else None
    ours_clean, gx_clean = ours_runs[0], gx_runs[0] if gx_runs else None
    ours_peak = max(r["peak_rss"] for r in ours_runs)
    gx_peak = max(r["peak_rss"] for r in gx_runs) if gx_runs else 0
    drift_agree = bool(gx_clean) and all(
        {k for k in o["failed"] if k.startswith("drift:")} == {k for k in g["failed"] if k.startswith("drift:")}
        for o, g in ((ours_clean, gx_clean), broken[:2]) if g is not None)
    lines = [SECTION, "",
             f"- date: {started.strftime('%Y-%m-%d %H:%M UTC')}",
             f"- machine: {m['platform']}; {m['cpu']}; {m['memory']} RAM; Python {m['python']}",
             f"- versions: ours mlops-suite {v['mlops-suite']} (pyarrow {v['pyarrow']}, pandas {v['pandas']}, "
             f"numpy {v['numpy']}); "
             + (f"Great Expectations {gx_version} in its own venv `bench/.venv-gx` from `bench/{env['source']}` "
                "(same pandas and pyarrow versions)" if gx_version else
                f"Great Expectations not installed from `bench/{env['source']}` (see below)"),
             f"- data: {ROWS:,} rows x 20 columns, {data_bytes / 2**20:.1f} MiB of Parquet on local disk: "
             f"{generator_call(example_project(PROJECT), ROWS, SEED)} (17 columns) plus {', '.join(DERIVED)} "
             f"(`loan_amount / income`, `log(income)`, `credit_utilization * num_late_payments_12m`)",
             f"- contract: `infer_contract(df, 'bench', key=['{example_project(PROJECT).entity.key}'], "
             f"timestamp='{example_project(PROJECT).event_timestamp}')` on the "
             f"same frame, written with its reference profile (`write_contract_files`) so the drift checks run; "
             f"{len(contract.columns)} columns, rows {contract.min_rows:,} to {contract.max_rows:,}",
             f"- repeats: {repeats} of ours, {gx_repeats} of GX, alternating, each in a fresh subprocess; "
             f"command: `.venv/bin/python bench/bench_validation.py`",
             f"- load average (1 min) before / after the measurements: {load[0][0]:.2f} / {load[1][0]:.2f} "
             f"(the data generation just before counts in the first; other work on the machine slows both "
             f"sides, so compare ratios from quiet runs)",
             ""]
    if not gx_runs:
        lines += [f"**Great Expectations could not be run**: {env.get('error', 'see the log')}", ""]
    lines += [table(rows, gx_version), ""]
    if gx_runs:
        gx_row = next(r for r in rows if r["name"] == "gx")
        ratio = gx_row["ratio"]
        lines += [f"Throughput: ours {ROWS / rows[0]['median']:,.0f} rows/s, GX {gx_row['rows_per_s']:,.0f} rows/s: "
                  f"**{ratio:.1f}x** GX's throughput measured from the file (goal >= 10x: "
                  f"{'met' if ratio >= 10 else 'NOT met'}); {gx_row['min'] / rows[0]['min']:.1f}x between the fastest runs "
                  f"of each; on the validation alone, without GX's Parquet read, "
                  f"{gx_row['validate'] / rows[0]['median']:.1f}x. Ours takes well under a second, so a few tenths "
                  f"of a second of noise from other work on the machine move this ratio by several points. Peak RSS is each worker process's own high-water "
                  f"mark (`VmHWM`; interpreter and imports included; after imports, before reading: ours "
                  f"{ours_clean['rss_before'] / 2**20:.0f} MiB, GX {gx_clean['rss_before'] / 2**20:.0f} MiB).", ""]
    lines += ["What is measured: each repetition is a fresh worker process (this script with `--worker`), so "
              "no run profits from another's warm interpreter; both read the same Parquet file from the "
              "page cache. **Ours** times the one call `validate_parquet(path, contract)`: it reads the file "
              "itself, once, streaming, and runs every check of the contract. **GX** times "
              "`pandas.read_parquet(path)` (the Parquet read column) and then `get_batch` on the whole-"
              "dataframe batch definition of an ephemeral context's pandas data source plus "
              "`batch.validate(suite)` (the validation column), with GX's default result format and "
              "progress bars off; the total is the sum, so both sides are measured from the file.", ""]
    lines += ["Every repetition (s), to judge the spread: ours "
              + ", ".join(f"{r['total_seconds']:.2f}" for r in ours_runs)
              + ("; GX total " + ", ".join(f"{r['total_seconds']:.2f}" for r in gx_runs)
                 + " (read " + ", ".join(f"{r['read_seconds']:.2f}" for r in gx_runs) + ")" if gx_runs else "")
              + ". Not in any number above: process start-up and imports (ours "
              + f"{statistics.median(r['import_seconds'] for r in ours_runs):.2f} s"
              + (f", GX {statistics.median(r['import_seconds'] for r in gx_runs):.2f} s" if gx_runs else "")
              + "), loading the contract (ours) and building the ephemeral context, data source and suite "
              + (f"(GX, {statistics.median(r['setup_seconds'] for r in gx_runs):.2f} s)" if gx_runs else "(GX)")
              + ("; building GX's venv took " + f"{env['seconds']:.0f} s this time" if env.get("built") and env["ok"]
                 else "; GX's venv already existed for the same lock") + ".", ""]
    lines += timing_notes
    # Verdicts.
    lines += ["**Verdicts.** Clean data: ours "
              + ("PASSED" if ours_clean["passed"] else "FAILED")
              + f" ({ours_clean['errors']} errors, {ours_clean['warnings']} warnings)"
              + (f", GX {'PASSED' if gx_clean['passed'] else 'FAILED'} ({gx_clean['failed_expectations']} of "
                 f"{gx_clean['expectations']} expectations failed; GX's own `success` flag: {gx_clean['gx_success']})"
                 if gx_clean else "")
              + (": the same verdict." if gx_clean and gx_clean["passed"] == ours_clean["passed"] else
                 (": DIFFERENT verdicts, see the findings below." if gx_clean else ".")), ""]
    if broken:
        ours_b, gx_b, same, detail = broken
        lines += [f"Broken copy ({generator_call(example_project(PROJECT), ROWS, SEED, BROKEN_SCENARIO)}: income in "
                  f"thousands, the derived columns computed from it; and rows {DUPLICATED_KEYS + 1:,} to "
                  f"{2 * DUPLICATED_KEYS:,} given the {example_project(PROJECT).entity.key} of rows 1 to "
                  f"{DUPLICATED_KEYS:,}): ours "
                  + ("PASSED" if ours_b["passed"] else "FAILED") + f" ({ours_b['errors']} errors, "
                  f"{ours_b['warnings']} warnings)"
                  + (f", GX {'PASSED' if gx_b['passed'] else 'FAILED'} ({gx_b['failed_expectations']} expectations "
                     f"failed)" if gx_b else "")
                  + (". GX was not run; ours flags:" if gx_b is None else
                     ". Both flag the same check families on the same columns:" if same else
                     ". They do NOT flag the same (family, column) pairs:"),
                  "", "| family | column | ours | GX |", "|---|---|---|---|", *detail, ""]
        if gx_b:
            lines += ["Counts behind the count-based findings: " + "; ".join(compare_counts(ours_b, gx_b))
                      + f". For the key, ours counts the rows that repeat an earlier key ({DUPLICATED_KEYS:,}), "
                      f"GX every row whose key is not unique (both copies, {2 * DUPLICATED_KEYS:,}).", ""]
    lines += ["**Expectations on both sides** (GX expectation <-> our check; severities mapped error -> "
              "`critical`, warning -> `warning`, and the GX verdict counts as passed when no critical "
              f"expectation failed, as ours passes with warnings; {len(expectations)} expectations in all):",
              *expectation_list(expectations), ""]
    lines += ["**What is equivalent and what is not.** Equivalent: the row-count bounds, the exact column set, "
              "per-column existence, non-null (`mostly = 1 - max_missing` for nullable columns, NaN counted "
              "as missing on both sides), inclusive numeric ranges, category sets and the key's uniqueness: "
              "the same rules on the same data (on the broken copy the range counts are equal, see "
              "above). Types: ours checks the Parquet schema (Arrow types) without reading data; "
              "GX checks the pandas dtype (`expect_column_values_to_be_in_type_list`) and, for object "
              "(string) columns, the Python type of every value (`..._of_type` `str`); tz-aware "
              "timestamps pass GX only as `Timestamp` (the dtype's scalar type; `datetime64[ns, UTC]` and "
              "`DatetimeTZDtype` are not recognised by GX's pandas type check), so that is what this suite "
              "uses. Drift is the closest and least equal pair: ours summarises the batch (sorted values, "
              "compressed to 20,000 equal-mass points) and compares it with the contract's reference "
              "profile (500 equal-mass points per numeric column, category counts) using monitoring's "
              "statistics: PSI over Sturges bins of both samples (numeric, threshold 0.2) or the "
              "Jensen-Shannon distance (categorical, 0.1); GX's closest expectation, "
              "`expect_column_kl_divergence_to_be_less_than`, gets the reference's deciles as its "
              "partition (read from the same profile, outer bins open to +-inf; the categories and their "
              "shares) and computes KL(batch || reference), with thresholds converted by the "
              "small-difference approximations PSI ~ 2 KL (so 0.1) and JSD = d^2 ~ KL/4 (so 0.04). Far "
              "from the reference they differ in scale (PSI floors an empty bin at a millionth of the "
              "smallest share, KL goes infinite when the batch fills "
              "a bin or category the reference never had): expect them to agree on drift / no drift when "
              "a distribution clearly stays or clearly moves, not on the number or near the threshold"
              + (" (here they agree on every column of both files)." if drift_agree else
                 " (here they DISAGREE on some columns: see the findings).")
              + " Ours also reports a column entirely null as `missing.all_null` (GX only sees "
              "the missing fraction) and keeps up to 5 extreme values per range finding; GX's default "
              "SUMMARY result format keeps up to 20 unexpected values and their indices. Both read the "
              "whole file: ours iterates over it in 65,536-row Arrow batches straight from Parquet, GX "
              "validates an in-memory pandas DataFrame, so its Parquet -> pandas read is timed and counted. "
              f"Memory: pyarrow decodes a whole row group before handing out its batches, and this file "
              f"(written by `DataFrame.to_parquet` with pyarrow's defaults) has {row_groups} row "
              f"group{'s' if row_groups != 1 else ''} of up to {group_rows:,} rows, so ours peaks "
              f"{(ours_peak - ours_clean['rss_before']) / 2**20:.0f} MiB above its imports here; its "
              "bound of one batch plus 8 bytes per row for key hashes holds for files written in smaller "
              "row groups." + (f" GX peaks {(gx_peak - gx_clean['rss_before']) / 2**20:.0f} MiB above its "
                               "imports (the DataFrame plus its metrics' intermediates)." if gx_clean else ""), ""]
    if notes:
        lines += ["Not mapped: " + "; ".join(notes) + ".", ""]
    return "\n".join(lines)


# -- main -----------------------------------------------------------------------------------
def _set_rows(rows: int) -> None:
    global ROWS
    ROWS = rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="repetitions of each side (default 3)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (data, contract)")
    parser.add_argument("--rows", type=int, default=ROWS,
                        help=f"rows to generate (default {ROWS:,}); RESULTS.md is written only for the default")
    parser.add_argument("--quick", action="store_true",
                        help=f"a check, not a measurement: {QUICK_ROWS:,} rows, one repetition, ours only (no GX "
                             "venv), worker files in the temporary directory, RESULTS.md untouched")
    parser.add_argument("--worker", choices=("ours", "gx"), help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--contract", help=argparse.SUPPRESS)
    parser.add_argument("--expectations", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return run_worker(args)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    if args.quick:
        args.repeats, args.rows = 1, QUICK_ROWS
    if args.rows != ROWS:
        _set_rows(args.rows)

    started = datetime.now(timezone.utc)
    with work_dir("mlops-bench-validation-", args.keep, "data and contract") as work:
        return _run(args, started, work)


def _run(args, started: datetime, work: Path) -> int:
    out_dir = work / "out" if args.quick else OUT_DIR
    env = ({"ok": False, "built": False, "seconds": 0.0, "source": GX_LOCK.name, "error": "--quick: GX not run"}
           if args.quick else ensure_gx_env())
    if env["ok"]:
        how = f"built in {env['seconds']:.0f} s" if env["built"] else "reused"
        progress(f"GX environment ready ({how})")
    else:
        progress(f"Great Expectations could not be installed; only our side is measured:\n{env['error']}")

    from mlops.validation.contract import infer_contract, load_contract, load_reference_profile, write_contract_files

    clean, broken = work / "bench-1m.parquet", work / f"bench-1m-{BROKEN_SCENARIO}.parquet"
    progress(f"generating {ROWS:,} rows x 20 columns (seed {SEED}) and writing {clean.name}")
    df = bench_frame()
    df.to_parquet(clean, index=False)
    progress("inferring the contract and its reference profile from the same frame")
    project = example_project(PROJECT)
    contract = infer_contract(df, "bench", key=[project.entity.key], timestamp=project.event_timestamp)
    contract_path, _ = write_contract_files(contract, df, work / "bench.yaml")
    contract = load_contract(contract_path)
    del df
    progress(f"generating the broken copy (scenario {BROKEN_SCENARIO}, {DUPLICATED_KEYS:,} repeated keys) "
             f"and writing {broken.name}")
    bench_frame(BROKEN_SCENARIO, DUPLICATED_KEYS).to_parquet(broken, index=False)
    data_bytes = clean.stat().st_size

    ref_profiles = load_reference_profile(contract).features
    expectations, notes = gx_expectations(contract, ref_profiles)
    expectations_path = work / "gx-expectations.json"
    expectations_path.write_text(json.dumps({"name": "bench", "expectations": expectations}))
    progress(f"{len(expectations)} GX expectations from the contract's {len(contract.columns)} columns")

    ours_runs, gx_runs, timing_notes = [], [], []
    gx_repeats = args.repeats if env["ok"] else 0
    load_before = os.getloadavg()
    for rep in range(1, args.repeats + 1):
        progress(f"[{rep}/{args.repeats}] ours: validate_parquet ...")
        run = run_side("ours", clean, contract_path, expectations_path, f"ours-{rep}", out_dir)
        ours_runs.append(run)
        progress(f"  {describe(run)}")
        if rep <= gx_repeats:
            progress(f"[{rep}/{gx_repeats}] GX: read_parquet + batch.validate(suite) ...")
            run = run_side("gx", clean, contract_path, expectations_path, f"gx-{rep}", out_dir)
            gx_runs.append(run)
            progress(f"  {describe(run)}")
            if run["raised"]:
                progress("  GX raised inside expectations: " + " | ".join(run["raised"]))
            if rep == 1 and run["total_seconds"] > 120 and gx_repeats > 1:
                gx_repeats = 1
                timing_notes += [f"GX's first run took {run['total_seconds']:.0f} s (> 2 minutes), so it was run "
                                 f"once instead of {args.repeats} times.", ""]
                progress("  GX took over 2 minutes: no more GX repetitions")
    load = (load_before, os.getloadavg())

    progress(f"sanity check on the broken copy ({BROKEN_SCENARIO}) ...")
    ours_b = run_side("ours", broken, contract_path, expectations_path, "ours-broken", out_dir)
    progress(f"  ours: {describe(ours_b)}")
    gx_b = None
    if env["ok"]:
        gx_b = run_side("gx", broken, contract_path, expectations_path, "gx-broken", out_dir)
        progress(f"  GX: {describe(gx_b)}")
    same, detail = compare_broken(ours_b, gx_b)
    progress("  both flag the same (family, column) pairs" if same else "  the tools flag DIFFERENT pairs")

    rows = summarize(ours_runs, gx_runs)
    gx_version = gx_runs[0]["version"] if gx_runs else None
    section = section_text(rows, ours_runs, gx_runs, (ours_b, gx_b, same, detail), env, notes, expectations,
                           contract, started, load, data_bytes, args.repeats, len(gx_runs), timing_notes,
                           *row_group_shape(clean))
    if ROWS == FULL_ROWS:
        write_results(section, SECTION)
    else:
        progress(f"{ROWS:,} rows is not the benchmark's {FULL_ROWS:,}: RESULTS.md left as it is")
    print()
    print(SECTION)
    print()
    print(table(rows, gx_version))
    print()
    for line in ["| family | column | ours | GX |", "|---|---|---|---|", *detail]:
        print(line)
    print()
    if ROWS == FULL_ROWS:
        progress(f"wrote {rel(RESULTS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
