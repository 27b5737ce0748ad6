"""Benchmark: single-row online serving, our predictor and transformer vs. bare KServe and `mlflow models serve`.

``make bench`` runs ``.venv/bin/python bench/bench_serving.py``. It

1. starts its own local platform (S3 + MLflow) on free 127.0.0.1 ports with
   its state in a temporary MLOPS_HOME, and stops it at the end, even on
   failure;
2. builds one model of the credit-default example project for every server:
   the example's own generator (``generate_data(project, 20000, seed=7)``,
   examples/credit-default/data.py) written to S3, then the suite's stages
   in-process (``build_features``: features, snapshot, Feast apply and
   materialize into the SQLite online store; ``retrieve_training_data``;
   ``train_and_log`` with the project's model params; ``register``), and
   fetches the registered version's files (``resolve_model`` +
   ``fetch_model``): that local MLflow model directory is what all servers
   load; and the same for the second example project, churn
   (``generate_data(churn, 20000, seed=7)``, its LogisticRegression pipeline);
3. starts, each as its own process on 127.0.0.1 (``mlops.platform.processes``):
   (a) the anchor, a bare KServe ModelServer (``bench/bare_kserve_server.py``:
   a minimal ``kserve.Model``, no validation, no metrics of ours);
   (b) the second anchor, ``mlflow models serve --env-manager local``;
   (c) our predictor (``python -m mlops.serving.predictor --project
   credit-default --model-dir ...``);
   (d) our transformer in front of (c), reading online features from the
   Feast store built in 2;
   (e) the same transformer with shadow mirroring on (the routing document
   names a second predictor process serving the same version), switched on
   and off between measurements through the routing document, as the rollout
   controller does; every server with one OpenMP/BLAS thread (SERVER_ENV);
4. measures each with one sequential keep-alive HTTP client (stdlib
   ``http.client``), single-row requests with pre-encoded bodies, WARMUP
   warm-up requests then REQUESTS measured ones, rows cycling through a fixed
   sample of real feature rows (the same rows for (a), (b), (c); customer ids
   for (d), (e)); one server at a time (the others idle), in ROUNDS rounds
   with a rotating order, reporting each server's median round; and, in this
   process, the floor: ``predict_proba`` on one row, and the pieces of the
   request path;
5. then the second project, churn, the same way for its own model: its bare
   KServe ModelServer (the anchor, ``bare_kserve_server.py`` on churn's model
   directory), our predictor (``--project churn``) and our transformer in
   front of it (integer subscriber ids in, churn's online features), measured
   in ROUNDS rounds of their own with the credit servers idle, plus its
   in-process floor;
6. prints the tables and writes them into bench/RESULTS.md (only this
   benchmark's section is replaced; other benchmarks keep theirs), only with
   the default ``--requests``.

``--quick`` checks the script end to end: 5,000 training rows per project,
100 requests per server in one round, 50 in-process calls per piece, its
files in the temporary MLOPS_HOME, RESULTS.md and bench/out untouched.

This is a benchmark, not a test: it asserts nothing about speed. It does check
that the servers answer the same model (same probabilities from (a), (c) and
in-process; the same classes from (b); the transformer's answer equals the
model on the customer's online features) and that the shadow really received
the mirrored requests.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import re
import sys
import time
from contextlib import ExitStack
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np
import psutil

# bench/common.py: bench/ is on sys.path when this file is run as a script, not when it is imported by path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (RESULTS, example_project, generator_call, machine, progress, start_private_platform,  # noqa: E402
                    write_results)

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / "bench"
OUT_DIR = BENCH_DIR / "out"
SECTION = "## Serving (KServe 0.21, single-row requests)"

ROWS = 20_000
SEED = 7
DATA_URI = "s3://mlops/bench/serving-20k.parquet"
PROJECT = "credit-default"  # the example project every server of the main table serves
MODEL_NAME = "credit-default"  # its names.model (checked against the project in _run)
SECOND = "churn"  # the second example project: its own bare anchor, predictor and transformer
SECOND_DATA_URI = "s3://mlops/bench/serving-churn-20k.parquet"
EXPERIMENT = "bench-serving"
REQUESTS = 2_000  # measured requests per server and round
WARMUP = 200  # unmeasured requests before them
ROUNDS = 3
SAMPLE = 200  # distinct rows (and customer ids) the requests cycle through
BATCH_ROWS = 100  # rows (customer ids) per request in the batch measurements
BATCH_WARMUP = 20
BATCH_SHARE = 10  # a batch measurement sends requests / BATCH_SHARE requests (each 100 rows)
INPROCESS_CALLS = 500
READY_TIMEOUT_S = 180.0
SWITCH_TIMEOUT_S = 30.0
QUICK = {"ROWS": 5_000, "REQUESTS": 100, "WARMUP": 20, "ROUNDS": 1, "INPROCESS_CALLS": 50, "BATCH_WARMUP": 5}

GOAL_VS_BARE = 0.9  # our predictor's throughput / bare ModelServer's, at least
GOAL_VS_MLFLOW = 1.2  # our predictor's throughput / mlflow serve's, at least
GOAL_TRANSFORMER_P50_MS = 3.0  # transformer + predictor p50, at most
GOAL_SHADOW_PCT = 10.0  # p50 increase from shadow mirroring, at most

# Every server process gets one OpenMP/BLAS thread (see openmp_note).
SERVER_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
SERVERS = ("bare", "mlflow", "predictor", "transformer", "shadow")
LABELS = {
    "bare": "bare KServe ModelServer (anchor)",
    "mlflow": "`mlflow models serve` (anchor)",
    "predictor": "ours: predictor",
    "transformer": "ours: transformer + predictor",
    "shadow": "ours: transformer + predictor, shadow mirroring on",
}
# 100-row V2 requests, JSON tensors against the binary tensor data extension (issue 15).
BATCHES = ("predictor-json", "predictor-binary", "transformer-json", "transformer-binary")
BATCH_LABELS = {
    "predictor-json": "ours: predictor, V2 JSON tensors",
    "predictor-binary": "ours: predictor, V2 binary tensors in and out",
    "transformer-json": "ours: transformer + predictor, V2 JSON tensor of ids",
    "transformer-binary": "ours: transformer + predictor, V2 binary tensor of ids, binary out",
}
REQUEST_KIND = {
    "bare": "V1 `{\"instances\": [row]}`",
    "mlflow": "`/invocations` `{\"dataframe_records\": [row]}`",
    "predictor": "V1 `{\"instances\": [row]}`",
    "transformer": "V1 `{\"instances\": [{\"customer_id\": id}]}`",
    "shadow": "V1 `{\"instances\": [{\"customer_id\": id}]}`",
}
# The second project's servers: its anchor, our predictor, our transformer in front of it.
SECOND_SERVERS = ("bare", "predictor", "transformer")
SECOND_REQUEST_KIND = {
    "bare": "V1 `{\"instances\": [row]}`",
    "predictor": "V1 `{\"instances\": [row]}`",
    "transformer": "V1 `{\"instances\": [{\"<entity key>\": id}]}`",  # the project's key, filled in below
}


# -- the client ---------------------------------------------------------------------
class Client:
    """One keep-alive HTTP/1.1 connection; POSTs pre-encoded JSON bodies and returns the answer's bytes."""

    def __init__(self, port: int, path: str) -> None:
        self.port, self.path = port, path
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.headers = {"Content-Type": "application/json"}

    def post(self, body: bytes | tuple[bytes, dict]) -> bytes:
        """POST a body, or a (body, extra headers) pair (a binary-tensor body carries its header's length)."""
        body, extra = body if isinstance(body, tuple) else (body, None)
        self.conn.request("POST", self.path, body=body, headers={**self.headers, **extra} if extra else self.headers)
        resp = self.conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"POST 127.0.0.1:{self.port}{self.path} answered {resp.status}: {data[:300]!r}")
        return data

    def close(self) -> None:
        self.conn.close()


def process_cpu(pids: dict[str, int]) -> dict[str, float]:
    """User + system CPU seconds so far of each named process, its descendants included."""
    out = {}
    for name, pid in pids.items():
        out[name] = 0.0
        try:
            proc = psutil.Process(pid)
            for p in (proc, *proc.children(recursive=True)):
                t = p.cpu_times()
                out[name] += t.user + t.system
        except psutil.Error:
            pass
    return out


def measure(port: int, path: str, bodies: list, warmup: int, n: int, pids: dict[str, int]) -> dict:
    """Warm up, then time ``n`` sequential requests cycling through ``bodies`` on one connection."""
    client = Client(port, path)
    try:
        for i in range(warmup):
            client.post(bodies[i % len(bodies)])
        lat = np.empty(n)
        clock = time.perf_counter_ns
        cpu0, own0 = process_cpu(pids), time.process_time()
        start = clock()
        for i in range(n):
            t0 = clock()
            client.post(bodies[i % len(bodies)])
            lat[i] = clock() - t0
        elapsed = (clock() - start) / 1e9
        cpu1, client_cpu = process_cpu(pids), time.process_time() - own0
        cpu = {name: (cpu1[name] - cpu0[name]) / n * 1e3 for name in pids}
    finally:
        client.close()
    lat /= 1e6
    p50, p99 = np.percentile(lat, [50, 99])
    return {"rps": n / elapsed, "p50": float(p50), "p99": float(p99), "mean": float(lat.mean()),
            "max": float(lat.max()), "elapsed": elapsed, "server_cpu_ms": sum(cpu.values()), "cpu_ms": cpu,
            "client_cpu_ms": client_cpu / n * 1e3}


def log_lines(path: str) -> int:
    with open(path, "rb") as fh:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))


def post_once(port: int, path: str, body) -> bytes:
    client = Client(port, path)
    try:
        return client.post(body)
    finally:
        client.close()


def median_of_calls(call, args_list: list, calls: int) -> float:
    """Median wall time (ms) of ``call(arg)`` over ``calls`` calls cycling through ``args_list`` (after a warm-up)."""
    for a in args_list[:50]:
        call(a)
    out = np.empty(calls)
    clock = time.perf_counter_ns
    for i in range(calls):
        a = args_list[i % len(args_list)]
        t0 = clock()
        call(a)
        out[i] = clock() - t0
    return float(np.median(out)) / 1e6


def one_openmp_thread(call):
    """``call()`` with scikit-learn's OpenMP pool limited to one thread (HistGradientBoosting predicts in parallel)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="openmp"):
        return call()


def run_coroutine(coro):
    """Drive a coroutine that never suspends (our predictor's predict) without an event loop's overhead."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    raise RuntimeError("the coroutine suspended; it needs an event loop")


# -- metrics of the transformer --------------------------------------------------------
_SAMPLE_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def scrape(port: int) -> list[tuple[str, dict[str, str], float]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    out = []
    for line in text.splitlines():
        m = _SAMPLE_LINE.match(line)
        if m and not line.startswith("#"):
            out.append((m.group(1), dict(_LABEL.findall(m.group(2) or "")), float(m.group(3))))
    return out


def metric(samples, name: str, **labels: str) -> float:
    return sum(v for n, lab, v in samples if n == name and all(lab.get(k) == x for k, x in labels.items()))


def shadow_on(port: int, version: str) -> bool:
    return metric(scrape(port), "mlops_shadow_target_info", model_version=version) == 1.0


# -- reporting ------------------------------------------------------------------------
def versions() -> dict[str, str]:
    out = {}
    for name in ("mlops-suite", "kserve", "mlflow", "scikit-learn", "feast", "fastapi", "uvicorn", "httpx",
                 "pandas", "numpy"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    if out["mlops-suite"] == "not installed":
        import mlops

        out["mlops-suite"] = mlops.__version__
    return out


def median_round(runs: list[dict]) -> dict:
    """The round with the median throughput (the lower middle one for an even count)."""
    ordered = sorted(runs, key=lambda r: r["rps"])
    return ordered[(len(ordered) - 1) // 2]


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def evaluate(results: dict[str, list[dict]]) -> dict:
    med = {key: median_round(runs) for key, runs in results.items()}
    vs_bare = med["predictor"]["rps"] / med["bare"]["rps"]
    vs_mlflow = med["predictor"]["rps"] / med["mlflow"]["rps"]
    # Paired per round (same round, same machine conditions), to judge the spread of the ratios.
    rounds = len(results["bare"])
    paired_bare = [results["predictor"][i]["rps"] / results["bare"][i]["rps"] for i in range(rounds)]
    paired_mlflow = [results["predictor"][i]["rps"] / results["mlflow"][i]["rps"] for i in range(rounds)]
    paired_shadow = [100 * (results["shadow"][i]["p50"] / results["transformer"][i]["p50"] - 1) for i in range(rounds)]
    shadow_pct = 100 * (med["shadow"]["p50"] / med["transformer"]["p50"] - 1)
    goals = [
        ("our predictor's throughput vs the bare KServe ModelServer's", f">= {GOAL_VS_BARE:.2f}x",
         f"{vs_bare:.2f}x ({med['predictor']['rps']:,.0f} vs {med['bare']['rps']:,.0f} req/s)",
         vs_bare >= GOAL_VS_BARE),
        ("our predictor's throughput vs `mlflow models serve`'s", f">= {GOAL_VS_MLFLOW:.2f}x",
         f"{vs_mlflow:.2f}x ({med['predictor']['rps']:,.0f} vs {med['mlflow']['rps']:,.0f} req/s)",
         vs_mlflow >= GOAL_VS_MLFLOW),
        ("transformer + predictor p50", f"<= {GOAL_TRANSFORMER_P50_MS:g} ms", f"{med['transformer']['p50']:.2f} ms",
         med["transformer"]["p50"] <= GOAL_TRANSFORMER_P50_MS),
        ("p50 added by shadow mirroring", f"<= {GOAL_SHADOW_PCT:g}%",
         f"{shadow_pct:+.1f}% ({med['transformer']['p50']:.2f} -> {med['shadow']['p50']:.2f} ms)",
         shadow_pct <= GOAL_SHADOW_PCT),
    ]
    return {"median": med, "vs_bare": vs_bare, "vs_mlflow": vs_mlflow, "shadow_pct": shadow_pct, "goals": goals,
            "paired_bare": paired_bare, "paired_mlflow": paired_mlflow, "paired_shadow": paired_shadow}


def results_table(ev: dict) -> str:
    med = ev["median"]
    bare = med["bare"]["rps"]
    lines = ["| server | request | req/s | p50 (ms) | p99 (ms) | server CPU per request (ms) | log lines per request "
             "| req/s vs bare ModelServer |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for key in SERVERS:
        r = med[key]
        lines.append(f"| {LABELS[key]} | {REQUEST_KIND[key]} | {r['rps']:,.0f} | {r['p50']:.2f} | {r['p99']:.2f} "
                     f"| {r['server_cpu_ms']:.2f} | {r.get('log_lines', math.nan):.1f} | {r['rps'] / bare:.2f}x |")
    return "\n".join(lines)


def goals_table(ev: dict) -> str:
    lines = ["| goal | target | measured (median rounds) | verdict |", "|---|---|---|---|"]
    for name, target, measured, ok in ev["goals"]:
        lines.append(f"| {name} | {target} | {measured} | **{verdict(ok)}** |")
    return "\n".join(lines)


def floor_table(floor: dict) -> str:
    rows = [
        ("`predict_proba` on a one-row DataFrame (the floor)", floor["predict_proba"]),
        ("the bare server's `predict`: `pd.DataFrame(instances)` + `predict_proba`", floor["bare_predict"]),
        ("our predictor's `predict`: signature validation + `predict_proba` + metrics", floor["our_predict"]),
        ("  of which `RequestSchema.from_v1` (validation, typed DataFrame)", floor["from_v1"]),
        ("the transformer's `lookup([id])`: `online_features` + unknown-id check + metric", floor["lookup"]),
        ("  of which `online_features(fs, [id])` (Feast, SQLite, typed DataFrame)", floor["online_features"]),
        ("the transformer's `predictor_body(features)` (the predictor's V1 request)", floor["predictor_body"]),
        ("`predict_proba` on one row with OpenMP's default threads (one per CPU)",
         floor["predict_proba_default_threads"]),
    ]
    lines = ["| in-process call (this process, no HTTP; one OpenMP thread unless said) | median (ms) |", "|---|---:|"]
    lines += [f"| {label} | {value:.3f} |" for label, value in rows]
    return "\n".join(lines)


def batch_requests(sample, columns: list[str], numeric: set, customers: list[str], est, fs) -> tuple[dict, dict]:
    """The 100-row V2 bodies, JSON (orjson, as the README shows) and binary (as tritonclient builds it, binary
    outputs asked for with ``binary_data_output``), and the probabilities they must get: for the predictor from the sample's rows (a missing text becomes "missing": a binary BYTES tensor has
    no null; a missing number is null in JSON and NaN in binary), for the transformer from customer ids (the
    project's string entity key; ``fs`` its ProjectStore)."""
    import orjson
    import tritonclient.http as triton

    from mlops.features import store as feature_store

    key = fs.definitions.entity_key

    def body(tensors: list, binary: bool):
        if not binary:  # JSON as the README shows it (tritonclient cannot put a null in an FP64 tensor)
            return orjson.dumps({"inputs": [
                {"name": t.name(), "datatype": t.datatype(), "shape": t.shape(),
                 "data": [v.decode() if isinstance(v, bytes) else (None if v != v else v) for v in values.tolist()]}
                for t, values in tensors]})
        for tensor, values in tensors:
            tensor.set_data_from_numpy(values, binary_data=True)
        data, json_size = triton.InferenceServerClient.generate_request_body([t for t, _ in tensors])
        return data, {"Inference-Header-Content-Length": str(json_size)}

    bodies, expected = {key: [] for key in BATCHES}, {"predictor": [], "transformer": []}
    frame = sample.copy()
    for name in columns:
        if name not in numeric:
            frame[name] = frame[name].where(frame[name].notna(), "missing")
    for start in range(0, len(frame) - BATCH_ROWS + 1, BATCH_ROWS):
        rows = frame.iloc[start:start + BATCH_ROWS]
        for binary in (False, True):
            tensors = []
            for name in columns:
                if name in numeric:  # a missing number: NaN in binary, null in JSON
                    tensors.append((triton.InferInput(name, [BATCH_ROWS], "FP64"), rows[name].to_numpy("float64")))
                else:
                    tensors.append((triton.InferInput(name, [BATCH_ROWS], "BYTES"),
                                    np.array([str(v).encode() for v in rows[name]], dtype=np.object_)))
            bodies[f"predictor-{'binary' if binary else 'json'}"].append(body(tensors, binary))
        expected["predictor"].append(est.predict_proba(rows[columns])[:, 1])
        ids = customers[start:start + BATCH_ROWS]
        for binary in (False, True):
            tensor = triton.InferInput(key, [BATCH_ROWS], "BYTES")
            bodies[f"transformer-{'binary' if binary else 'json'}"].append(
                body([(tensor, np.array([c.encode() for c in ids], dtype=np.object_))], binary))
        expected["transformer"].append(est.predict_proba(feature_store.online_features(fs, ids)[columns])[:, 1])
    return bodies, expected


def batch_answer(content: bytes) -> np.ndarray:
    """The probabilities of a V2 answer, JSON or binary (its JSON header, then the raw outputs), read by
    tritonclient."""
    import orjson
    import tritonclient.http as triton

    try:
        orjson.loads(content)
        length = None
    except orjson.JSONDecodeError:  # binary: the header's length is where its JSON object ends
        length = json.JSONDecoder().raw_decode(content.decode("latin-1"))[1]
    return triton.InferenceServerClient.parse_response_body(content, header_length=length).as_numpy("probability")


def batch_table(batches: dict) -> str:
    med = {key: median_round(runs) for key, runs in batches.items()}
    lines = [f"| {BATCH_ROWS}-row V2 request | body (KiB) | req/s | rows/s | p50 (ms) | p99 (ms) "
             "| server CPU per request (ms) | req/s vs JSON tensors |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for key in BATCHES:
        r, json_rps = med[key], med[key.split("-")[0] + "-json"]["rps"]
        lines.append(f"| {BATCH_LABELS[key]} | {r['body_bytes'] / 1024:.1f} | {r['rps']:,.0f} | "
                     f"{r['rps'] * BATCH_ROWS:,.0f} | {r['p50']:.2f} | {r['p99']:.2f} | {r['server_cpu_ms']:.2f} | "
                     f"{r['rps'] / json_rps:.2f}x |")
    return "\n".join(lines)


def batch_note(batches: dict, args) -> str:
    n = max(100, args.requests // BATCH_SHARE)
    every = "; ".join(f"{key} " + ", ".join(f"{r['rps']:,.0f}" for r in runs) + " req/s"
                      for key, runs in batches.items())
    return (f"Batches: {n:,} measured requests of {BATCH_ROWS} rows per server, body kind and round after "
            f"{BATCH_WARMUP} warm-up requests, the same connection and rounds as above; JSON bodies as the README shows "
            f"them (orjson; FP64 and BYTES tensors, `null` for a missing number), binary bodies built by tritonclient "
            f"(`InferenceServerClient.generate_request_body`: binary inputs, NaN for a missing number, and "
            f"`binary_data_output`); the predictor's rows are the sample's first "
            f"{2 * BATCH_ROWS} (a missing text sent as \"missing\": a binary BYTES tensor has no null), the "
            f"transformer's the first {2 * BATCH_ROWS} customer ids. Before measuring, every body's answer equals "
            f"in-process `predict_proba`. Every round: {every}.")


def goal_notes(ev: dict, floor: dict) -> str:
    """What stands between a missed latency goal and the target, from this run's numbers."""
    med = ev["median"]
    notes = []
    if med["transformer"]["p50"] > GOAL_TRANSFORMER_P50_MS:
        budget = GOAL_TRANSFORMER_P50_MS - med["predictor"]["p50"]
        notes.append(
            f"The goals were set from anchor numbers measured on a model that predicts one row in ~0.1 ms "
            f"in-process (iris); this model's "
            f"one-row `predict_proba` alone takes {floor['predict_proba']:.2f} ms in-process and our predictor "
            f"answers in {med['predictor']['p50']:.2f} ms over HTTP, so the transformer's own share would have to be "
            f"{budget:.2f} ms" + (" (impossible: the model alone is over the goal)" if budget <= 0 else "")
            + f"; it is {med['transformer']['p50'] - med['predictor']['p50']:.2f} ms (see below where it goes).")
    return " ".join(notes) + (" " if notes else "")


def shadow_note(med: dict) -> str:
    """Where the shadow's added latency comes from, from the CPU each process spent per request."""
    plain, mirrored = med["transformer"]["cpu_ms"], med["shadow"]["cpu_ms"]
    extra = mirrored["transformer"] - plain["transformer"]
    return (f"With shadow mirroring on, the transformer's own CPU per request goes from {plain['transformer']:.2f} to "
            f"{mirrored['transformer']:.2f} ms ({extra:+.2f} ms: sending the copy, reading and comparing the "
            f"shadow's answer, its metrics), and the shadow predictor spends {mirrored['shadow_predictor']:.2f} ms "
            f"per request; the mirror runs after the answer is sent, but on this 2-CPU machine the shadow's work "
            f"overlaps the next request's (client, transformer, primary predictor) and competes with it for the "
            f"CPUs. In a cluster the shadow predictor runs in its own pod, so there only the transformer's share "
            f"would remain.")


def log_note(med: dict) -> str:
    """Who writes what per request, from this run's counts."""
    lines = {key: med[key].get("log_lines", math.nan) for key in ("bare", "predictor", "transformer", "mlflow")}
    return (f"the bare ModelServer writes {lines['bare']:.1f} (stock KServe 0.21: uvicorn's access line, two "
            f"`kserve.trace` timing lines and, with this FastAPI version, a two-line `FastAPIDeprecationWarning` "
            f"from its V1 endpoint's ORJSONResponse), our predictor {lines['predictor']:.1f}, our transformer "
            f"{lines['transformer']:.1f}, mlflow serve {lines['mlflow']:.1f} (uvicorn's access line).")


def openmp_note(med: dict, floor: dict) -> str:
    """Why the servers run with one OpenMP thread, with this run's numbers."""
    one, default = floor["predict_proba"], floor["predict_proba_default_threads"]
    text = (f"Every server process runs with `OMP_NUM_THREADS=1` (and OpenBLAS/MKL at 1): a request is one row, "
            f"and scikit-learn's HistGradientBoosting otherwise predicts with one OpenMP thread per CPU whose worker "
            f"spins between requests, burning CPU the client, the transformer and the other servers on this "
            f"2-CPU machine need (in-process, one row: {default:.2f} ms with the default threads vs {one:.2f} ms "
            f"with one). Our predictor asks for the same limit itself (`--threads`, default 1); the anchors get it "
            f"through the environment")
    return text + (", which makes them faster here, not slower." if default > one else ".")


def section_text(results: dict, ev: dict, floor: dict, info: dict, args, started: datetime,
                 load: tuple, batches: dict) -> str:
    m, v = machine(), versions()
    med = ev["median"]
    met = sum(ok for *_, ok in ev["goals"])

    def spread(key: str, field: str, fmt: str) -> str:
        return ", ".join(format(r[field], fmt) for r in results[key])

    every_round = "; ".join(f"{LABELS[k].replace('ours: ', '').replace(' (anchor)', '')} "
                            f"{spread(k, 'rps', ',.0f')} req/s (p50 {spread(k, 'p50', '.2f')} ms)" for k in SERVERS)
    http_bare = med["bare"]["p50"] - floor["bare_predict"]
    http_ours = med["predictor"]["p50"] - floor["our_predict"]
    trans_extra = med["transformer"]["p50"] - med["predictor"]["p50"]
    sh = info["shadow"]
    lines = [
        SECTION,
        "",
        f"- date: {started.strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {m['platform']}; {m['cpu']}; {m['memory']} RAM; Python {m['python']}",
        f"- versions: mlops-suite {v['mlops-suite']}, kserve {v['kserve']}, mlflow {v['mlflow']}, scikit-learn "
        f"{v['scikit-learn']}, feast {v['feast']}, fastapi {v['fastapi']}, uvicorn {v['uvicorn']}, httpx {v['httpx']} "
        f"(the transformer's client), pandas {v['pandas']}, numpy {v['numpy']}",
        f"- model: `{MODEL_NAME}` v{info['version']}, trained by the suite's stages in-process on "
        f"{generator_call(example_project(PROJECT), ROWS, SEED)} with the project's model params "
        f"(HistGradientBoosting, "
        f"{info['max_iter']} iterations, {len(info['columns'])} input columns behind an ordinal encoder; "
        f"validation ROC AUC {info['roc_auc']:.3f}); every server loads the same fetched MLflow model directory "
        f"({info['model_bytes'] / 2**10:.0f} KiB, skops)",
        f"- requests: {args.requests:,} measured single-row requests per server and round after {WARMUP} warm-up "
        f"requests, on one sequential keep-alive connection (stdlib `http.client`, bodies pre-encoded), rows "
        f"cycling through {SAMPLE} real feature rows of the held-out test set (the same rows for the bare "
        f"ModelServer, mlflow serve and our predictor) or {SAMPLE} materialized customer ids (transformer); "
        f"{ROUNDS} rounds, the servers measured one at a time (the others idle) in an order rotating each round; "
        f"each server's row is its median round by throughput; command: `.venv/bin/python bench/bench_serving.py`",
        f"- load average (1 min) before / after the measurements: {load[0][0]:.2f} / {load[1][0]:.2f} (2 CPUs: the "
        "client, the server and, for the transformer, the predictor, take turns on them; other work on the machine "
        "slows every server, so compare ratios from quiet runs)",
        "",
        results_table(ev),
        "",
        goals_table(ev),
        "",
        f"**{met} of {len(ev['goals'])} goals met in this run.** {goal_notes(ev, floor)}"
        f"Ratios per round (paired, same conditions), to judge their spread: predictor / bare ModelServer "
        f"{', '.join(f'{x:.2f}x' for x in ev['paired_bare'])}; predictor / mlflow serve "
        f"{', '.join(f'{x:.2f}x' for x in ev['paired_mlflow'])}; shadow p50 increase "
        f"{', '.join(f'{x:+.1f}%' for x in ev['paired_shadow'])}.",
        "",
        f"Every round, to judge the spread: {every_round}.",
        "",
        floor_table(floor),
        "",
        batch_table(batches),
        "",
        batch_note(batches, args),
        "",
        f"Where the time goes, at p50: `predict_proba` on one row costs {floor['predict_proba']:.2f} ms in-process "
        f"(the scikit-learn pipeline: column transformer, ordinal encoding, {info['max_iter']} trees). The bare "
        f"ModelServer answers in {med['bare']['p50']:.2f} ms, so KServe's HTTP stack (uvicorn, FastAPI routing, "
        f"JSON decode and encode, its own Prometheus timers) and the client add {http_bare:.2f} ms to its in-process "
        f"`predict` ({floor['bare_predict']:.2f} ms). Our predictor answers in {med['predictor']['p50']:.2f} ms: "
        f"its in-process `predict` costs {floor['our_predict']:.2f} ms "
        f"({floor['our_predict'] - floor['bare_predict']:+.2f} ms vs "
        f"the bare one: validation against the signature {floor['from_v1']:.2f} ms, which also builds the typed "
        f"DataFrame the bare server builds with `pd.DataFrame(instances)`, plus our metrics), and the same HTTP "
        f"stack with our guard middleware and the version header adds {http_ours:.2f} ms. "
        f"The transformer adds {trans_extra:.2f} ms to the predictor's p50: its own KServe request handling, the "
        f"feature lookup ({floor['lookup']:.2f} ms in-process), building the predictor's request body "
        f"({floor['predictor_body']:.2f} ms in-process), an HTTP call to the predictor (V1, through httpx's async "
        f"client: the predictor's own latency plus the client side), the request log append and, every 2 s, the "
        f"request log's flush in a background thread (the GIL it holds delays requests). Server CPU per request "
        f"is the "
        f"user + system CPU time of the server processes (with their children; for the transformer rows the "
        f"transformer, the predictor and, with shadow on, the shadow predictor) over the measured requests, "
        f"divided by their number; the client spent {med['predictor']['client_cpu_ms']:.2f} ms of CPU per request. "
        f"{shadow_note(med)} {openmp_note(med, floor)} Log lines per request are the lines the measured "
        f"server (for the transformer rows: the transformer) appended to its output during the measurement, "
        f"divided by the requests: {log_note(med)}",
        "",
        f"What is measured: **bare KServe ModelServer** is `bench/bare_kserve_server.py`: a minimal `kserve.Model` "
        f"whose `predict` returns `predict_proba(pd.DataFrame(instances))[:, 1]` of the model loaded with "
        f"`mlflow.sklearn.load_model`, no validation, no digest check, no metrics of ours, on KServe's stock "
        f"`ModelServer` (gRPC off, per-request latency logging off as in ours) and its REST server bound to "
        f"127.0.0.1. **mlflow models serve** is `mlflow models serve -m <dir> --env-manager local` (1 uvicorn "
        f"worker, its default); it validates the input against the signature too, and answers the pyfunc `predict` "
        f"(the class), which for this model costs the same as `predict_proba`. **ours: predictor** is `python -m "
        f"mlops.serving.predictor --project {PROJECT} --model-dir <dir> --model-digest ...`: the digest-verified "
        f"model, every request checked against the signature, the probability and the class at the gate's decision "
        f"threshold "
        f"({info['threshold']:g}), Prometheus metrics (probability histogram, class counts), the version in the "
        f"body and the `x-mlops-model-version` header, behind our 4xx guard. **ours: transformer + predictor** is "
        f"`python -m mlops.serving.transformer --project {PROJECT}` in front of that predictor, with its request log "
        f"on (rows batched "
        f"to S3 every 2 s by a background thread): ids in, Feast online features (SQLite), the features to the "
        f"predictor over HTTP. "
        f"**shadow mirroring on** is the same transformer after the routing document "
        f"(`write_routing`) named a second predictor process serving the same version, and the transformer's "
        f"`/metrics` showed `mlops_shadow_target_info` 1; it is switched off again (and checked off) before each "
        f"no-shadow measurement. Shadow check over all rounds: of the {sh['sent']:,} requests sent while mirroring "
        f"was on, {sh['mirrored']:,} were mirrored and answered by the shadow, {sh['skipped']:,} skipped (too many "
        f"in flight), {sh['errors']:,} failed (the transformer's own counters); agreement with the primary "
        f"{sh['agree']:,} of {sh['agree'] + sh['disagree']:,} rows. Before measuring, the script checks that "
        f"the servers answer the same model: on all {SAMPLE} rows the bare ModelServer's and our predictor's "
        f"probabilities equal in-process `predict_proba` (max difference {info['max_diff']:.1e}), mlflow serve's "
        f"classes equal `predict`'s, and the transformer's probability for a customer equals `predict_proba` on "
        f"that customer's online features. Not measured: concurrent clients (each server here runs one uvicorn "
        f"worker; throughput under concurrency is bounded by the same per-request CPU), batches, gRPC, and a "
        f"network between the transformer and the predictor (in a cluster a pod-to-pod hop adds to its share).",
    ]
    return "\n".join(lines)


# -- the second project ---------------------------------------------------------------------
def measure_second_project(args, project, served, work: Path, store, cleanup: ExitStack) -> dict:
    """The second example project's single-row serving, as the first's: its bare KServe ModelServer (the anchor)
    on its own model directory, our predictor, our transformer in front of it; the same client, requests, rounds
    and checks. Its servers start after the first project's measurements and stop at the end of this phase."""
    import orjson
    import pandas as pd

    from mlops.features import store as feature_store
    from mlops.platform.local import HOST, free_ports
    from mlops.platform.processes import http_ok, start_process, stop_processes, wait_until_ready
    from mlops.registry.model_files import fetch_model, load_model, resolve_model
    from mlops.serving.predictor import ServedModel, decision_threshold
    from mlops.serving.routing import Routing, write_routing
    from mlops.serving.traffic_replay import known_ids
    from mlops.serving.transformer import FeatureTransformer

    name, key, version = project.names.model, project.entity.key, served.version
    base = work / f"project-{project.name}"  # where register_served_model wrote its train and test sets
    ref = resolve_model(name, version)
    model_dir = fetch_model(ref, work / "models")
    model_bytes = sum(p.stat().st_size for p in model_dir.rglob("*") if p.is_file())
    loaded = load_model(model_dir, ref.digest)
    columns = [c for c, _ in loaded.columns]
    numeric = {c for c, kind in loaded.columns if kind != "string"}
    test = pd.read_parquet(base / "test.parquet")
    sample = test.sample(n=SAMPLE, random_state=SEED)[columns].reset_index(drop=True)
    sample = sample.astype({c: "float64" for c in numeric})
    rows = [{c: (None if pd.isna(v) else (float(v) if c in numeric else str(v))) for c, v in rec.items()}
            for rec in sample.to_dict("records")]
    frames = [sample.iloc[[i]] for i in range(SAMPLE)]
    est = loaded.estimator
    expected = est.predict_proba(sample)[:, 1]
    missing_rows = int(sample.isna().any(axis=1).sum())

    # Ids the online store holds: the newest of the applied snapshot (its rows span a year, the TTL is shorter).
    fs = feature_store.open_store(feature_store.FeatureStoreConfig.from_env(), project)
    candidates = known_ids(project, limit=4 * SAMPLE)
    online = feature_store.online_features(fs, candidates)
    known = online.loc[online[columns].notna().any(axis=1), key].tolist()
    if len(known) < SAMPLE:
        raise RuntimeError(f"only {len(known)} of {len(candidates)} recent {key}s of {project.name} have online "
                           "features")
    rng = np.random.default_rng(SEED)
    entities = feature_store.online_ids(project, rng.permutation(np.array(known, dtype=object))[:SAMPLE])
    progress(f"{project.name}: {SAMPLE} test-set rows ({missing_rows} with a missing value), {SAMPLE} {key}s with "
             "online features")

    # -- in-process floor, as for the first project
    threshold = decision_threshold(project)
    ours = ServedModel(name, version, loaded, threshold)
    v1 = [{"instances": [r]} for r in rows]
    ours_answer = [run_coroutine(ours.predict(p))["predictions"][0]["probability"] for p in v1]
    if not np.allclose(ours_answer, expected, rtol=0, atol=1e-12):
        raise RuntimeError(f"{project.name}: our predictor's predict() in-process differs from predict_proba")
    transformer = FeatureTransformer(name, "http://127.0.0.1:9", fs)  # lookup only: never calls out
    floor = one_openmp_thread(lambda: {
        "predict_proba": median_of_calls(lambda f: est.predict_proba(f)[:, 1], frames, INPROCESS_CALLS),
        "bare_predict": median_of_calls(lambda p: est.predict_proba(pd.DataFrame(p["instances"]))[:, 1].tolist(),
                                        v1, INPROCESS_CALLS),
        "our_predict": median_of_calls(lambda p: run_coroutine(ours.predict(p)), v1, INPROCESS_CALLS),
        "lookup": median_of_calls(lambda c: transformer.lookup([c]), entities, INPROCESS_CALLS),
    })
    progress(f"  {project.name} in-process: " + ", ".join(f"{k} {v:.3f} ms" for k, v in floor.items()))

    # -- its servers
    names = ["bare", "predictor", "transformer"]
    port = free_ports(names)
    url = {k: f"http://{HOST}:{p}" for k, p in port.items()}
    logs = work / "logs" / project.name
    commands = {
        "bare": [sys.executable, str(BENCH_DIR / "bare_kserve_server.py"), "--model-name", name,
                 "--model-dir", str(model_dir), "--host", HOST, "--http-port", str(port["bare"])],
        "predictor": [sys.executable, "-m", "mlops.serving.predictor", "--project", project.source,
                      "--model-name", name, "--model-dir", str(model_dir), "--model-digest", ref.digest,
                      "--model-version", version, "--cache-dir", str(work / "models"), "--host", HOST,
                      "--http-port", str(port["predictor"])],
        "transformer": [sys.executable, "-m", "mlops.serving.transformer", "--project", project.source,
                        "--model-name", name, "--predictor-url", url["predictor"], "--host", HOST,
                        "--http-port", str(port["transformer"])],
    }
    write_routing(store, name, Routing())  # no shadow
    services = {}

    def stop() -> None:
        if services:
            stopped = stop_processes(list(services.values()))
            progress(f"stopped {project.name}'s servers: {', '.join(stopped) or 'none'}")
            services.clear()

    cleanup.callback(stop)
    progress(f"starting {project.name}'s servers (logs in {logs}): " + ", ".join(f"{k} :{port[k]}" for k in names))
    for k in names:
        services[k] = start_process(f"{project.name}-{k}", commands[k], url[k], logs, cwd=work, extra_env={
            **SERVER_ENV, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"})
    for k in names:
        t0 = time.perf_counter()
        wait_until_ready(services[k], lambda k=k: http_ok(url[k] + f"/v2/models/{name}/ready"), READY_TIMEOUT_S,
                         RuntimeError)
        progress(f"  {project.name} {k} ready at {url[k]} (waited {time.perf_counter() - t0:.1f} s)")

    # -- same model everywhere?
    path = f"/v1/models/{name}:predict"
    bodies = {"bare": [orjson.dumps(p) for p in v1], "predictor": [orjson.dumps(p) for p in v1],
              "transformer": [orjson.dumps({"instances": [{key: c}]}) for c in entities]}
    got = {"bare": [orjson.loads(post_once(port["bare"], path, b))["predictions"][0] for b in bodies["bare"]],
           "predictor": [orjson.loads(post_once(port["predictor"], path, b))["predictions"][0]["probability"]
                         for b in bodies["predictor"]]}
    max_diff = max(float(np.max(np.abs(np.asarray(got[k]) - expected))) for k in got)
    if max_diff > 1e-9:
        raise RuntimeError(f"{project.name}: the servers' probabilities differ from in-process predict_proba by up "
                           f"to {max_diff:g}")
    answer = orjson.loads(post_once(port["transformer"], path, bodies["transformer"][0]))
    own = est.predict_proba(feature_store.online_features(fs, [entities[0]])[columns])[:, 1][0]
    if answer["model_version"] != version or abs(answer["predictions"][0]["probability"] - own) > 1e-9:
        raise RuntimeError(f"{project.name}: the transformer answered {answer} for {entities[0]}; expected "
                           f"v{version}, probability {own}")
    progress(f"  {project.name}: all servers answer the same model (max probability difference {max_diff:.1e}; "
             f"transformer {entities[0]} -> {own:.4f})")

    # -- measure
    pid = {k: service.pid for k, service in services.items()}
    pids = {"bare": {"bare": pid["bare"]}, "predictor": {"predictor": pid["predictor"]},
            "transformer": {"transformer": pid["transformer"], "predictor": pid["predictor"]}}
    results = {k: [] for k in SECOND_SERVERS}
    load_before = os.getloadavg()
    for rnd in range(ROUNDS):
        order = SECOND_SERVERS[rnd % len(SECOND_SERVERS):] + SECOND_SERVERS[:rnd % len(SECOND_SERVERS)]
        progress(f"[{project.name} round {rnd + 1}/{ROUNDS}] {' -> '.join(order)}: {WARMUP} warm-up + "
                 f"{args.requests:,} requests each")
        for k in order:
            lines0 = log_lines(services[k].log)
            r = measure(port[k], path, bodies[k], WARMUP, args.requests, pids[k])
            r["log_lines"] = (log_lines(services[k].log) - lines0) / (WARMUP + args.requests)
            results[k].append(r)
            split = f" ({', '.join(f'{n} {v:.2f}' for n, v in r['cpu_ms'].items())})" if len(r["cpu_ms"]) > 1 else ""
            progress(f"  {project.name} {k}: {r['rps']:,.0f} req/s, p50 {r['p50']:.2f} ms, p99 {r['p99']:.2f} ms, "
                     f"max {r['max']:.1f} ms; server CPU {r['server_cpu_ms']:.2f} ms/request{split}")
    load = (load_before, os.getloadavg())
    stop()
    params = served.trained.trained.params
    info = {"project": project.name, "root": project.root, "model": name, "version": version, "key": key,
            "columns": columns, "roc_auc": served.trained.trained.metrics.get("roc_auc", math.nan),
            "params": params, "model_bytes": model_bytes, "threshold": threshold, "max_diff": max_diff,
            "missing_rows": missing_rows}
    return {"results": results, "floor": floor, "info": info, "load": load}


def evaluate_second(results: dict[str, list[dict]]) -> dict:
    """The second project's medians and the two goals that apply to it (no mlflow anchor, no shadow)."""
    med = {k: median_round(runs) for k, runs in results.items()}
    vs_bare = med["predictor"]["rps"] / med["bare"]["rps"]
    rounds = len(results["bare"])
    paired_bare = [results["predictor"][i]["rps"] / results["bare"][i]["rps"] for i in range(rounds)]
    goals = [
        ("our predictor's throughput vs the bare KServe ModelServer's (same model)", f">= {GOAL_VS_BARE:.2f}x",
         f"{vs_bare:.2f}x ({med['predictor']['rps']:,.0f} vs {med['bare']['rps']:,.0f} req/s)",
         vs_bare >= GOAL_VS_BARE),
        ("transformer + predictor p50", f"<= {GOAL_TRANSFORMER_P50_MS:g} ms", f"{med['transformer']['p50']:.2f} ms",
         med["transformer"]["p50"] <= GOAL_TRANSFORMER_P50_MS),
    ]
    return {"median": med, "vs_bare": vs_bare, "paired_bare": paired_bare, "goals": goals}


def second_table(ev: dict, info: dict) -> str:
    med = ev["median"]
    bare = med["bare"]["rps"]
    labels = {"bare": "bare KServe ModelServer (anchor)", "predictor": "ours: predictor",
              "transformer": "ours: transformer + predictor"}
    kinds = {**SECOND_REQUEST_KIND, "transformer": f"V1 `{{\"instances\": [{{\"{info['key']}\": id}}]}}`"}
    lines = [f"| {info['project']} server | request | req/s | p50 (ms) | p99 (ms) | server CPU per request (ms) "
             "| log lines per request | req/s vs bare ModelServer |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for k in SECOND_SERVERS:
        r = med[k]
        lines.append(f"| {labels[k]} | {kinds[k]} | {r['rps']:,.0f} | {r['p50']:.2f} | {r['p99']:.2f} "
                     f"| {r['server_cpu_ms']:.2f} | {r.get('log_lines', math.nan):.1f} | {r['rps'] / bare:.2f}x |")
    return "\n".join(lines)


def second_floor_table(floor: dict) -> str:
    rows = [("`predict_proba` on a one-row DataFrame (the floor)", floor["predict_proba"]),
            ("the bare server's `predict`: `pd.DataFrame(instances)` + `predict_proba`", floor["bare_predict"]),
            ("our predictor's `predict`: signature validation + `predict_proba` + metrics", floor["our_predict"]),
            ("the transformer's `lookup([id])`: `online_features` + unknown-id check + metric", floor["lookup"])]
    lines = ["| in-process call (one OpenMP thread) | median (ms) |", "|---|---:|"]
    lines += [f"| {label} | {value:.3f} |" for label, value in rows]
    return "\n".join(lines)


def model_text(project) -> str:
    """What the project's model is, for the prose."""
    if project.model.build is not None:
        known = {"churn": "its build hook's impute, scale and one-hot pipeline in front of a LogisticRegression"}
        return known.get(project.name, f"its build hook `{project.model.build}`")
    return f"`{project.model.estimator}`"


def second_section_text(run: dict, ev: dict, args) -> str:
    """The second project's part of the section: its own table, goals, floor and spread."""
    info, floor, results, load = run["info"], run["floor"], run["results"], run["load"]
    med = ev["median"]
    met = sum(ok for *_, ok in ev["goals"])
    project = example_project(info["project"])
    params = ", ".join(f"{k}={v}" for k, v in info["params"].items())
    every_round = "; ".join(f"{k} " + ", ".join(f"{r['rps']:,.0f}" for r in results[k]) + " req/s (p50 "
                            + ", ".join(f"{r['p50']:.2f}" for r in results[k]) + " ms)" for k in SECOND_SERVERS)
    return "\n".join([
        f"### Second project: {info['project']}",
        "",
        f"The same measurement for the second example project (`{project.root.relative_to(ROOT)}`), in the same run, "
        f"after the tables above, with the first project's servers idle: `{info['model']}` v{info['version']}, "
        f"trained by the same stages on {generator_call(project, ROWS, SEED)} with the project's model params "
        f"({model_text(project)}: {params}; "
        f"{len(info['columns'])} input columns; validation ROC AUC {info['roc_auc']:.3f}; "
        f"{info['model_bytes'] / 2**10:.0f} KiB fetched model directory). Its anchor is the same "
        f"`bench/bare_kserve_server.py` loading this project's model directory; our predictor runs with "
        f"`--project {info['project']}` (class at its gate's threshold, {info['threshold']:g}) and our transformer "
        f"in front of it reads the project's Feast online features by its {project.entity.type} `{info['key']}`. "
        f"Requests: "
        f"{args.requests:,} measured single-row requests per server and round after {WARMUP} warm-up requests on one "
        f"keep-alive connection, rows cycling through {SAMPLE} rows of its held-out test set "
        f"({info['missing_rows']} with a missing value) or {SAMPLE} materialized `{info['key']}`s; {ROUNDS} rounds "
        f"of its three servers in a rotating order; each server's row is its median round by throughput. Load "
        f"average (1 min) before / after: {load[0][0]:.2f} / {load[1][0]:.2f}.",
        "",
        second_table(ev, info),
        "",
        goals_table(ev),
        "",
        f"**{met} of {len(ev['goals'])} goals met for {info['project']} in this run** (the goals of the first "
        f"project that apply: there is no mlflow anchor or shadow here). Predictor / bare ModelServer per round: "
        f"{', '.join(f'{x:.2f}x' for x in ev['paired_bare'])}. Every round: {every_round}.",
        "",
        second_floor_table(floor),
        "",
        f"Before measuring, the script checks that the servers answer the same model: on all {SAMPLE} rows the bare "
        f"ModelServer's and our predictor's probabilities equal in-process `predict_proba` (max difference "
        f"{info['max_diff']:.1e}), and the transformer's probability for a `{info['key']}` equals `predict_proba` on "
        f"its online features. The transformer adds {med['transformer']['p50'] - med['predictor']['p50']:.2f} ms to "
        f"the predictor's p50 here (lookup {floor['lookup']:.2f} ms in-process).",
    ])


# -- main -----------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=REQUESTS,
                        help=f"measured requests per server and round (default {REQUESTS:,}); "
                             "RESULTS.md is written only for the default")
    parser.add_argument("--keep", action="store_true", help="keep the temporary MLOPS_HOME (logs, model, stores)")
    parser.add_argument("--quick", action="store_true",
                        help=f"a check, not a measurement: {QUICK['ROWS']:,} rows per project, {QUICK['REQUESTS']} "
                             "requests per server in one round; its files in the temporary MLOPS_HOME, RESULTS.md "
                             "untouched")
    args = parser.parse_args(argv)
    if args.requests < 100:
        parser.error("--requests must be >= 100 (p99 needs samples)")
    if args.quick:
        globals().update(QUICK)
        args.requests = REQUESTS

    started = datetime.now(timezone.utc)
    with ExitStack() as cleanup:
        # The benchmark's own platform and feature store: nothing from a user's platform or shell may leak in.
        home, _ = start_private_platform(cleanup, "mlops-bench-serving-", args.keep, clear_vars=(
            "MLOPS_FEAST_ONLINE_STORE", "MLOPS_FEAST_REDIS", "MLOPS_FEAST_REGISTRY", "MLOPS_FEAST_REPO",
            "MLOPS_PREDICTOR_URL", "MLOPS_SERVING_HOST", "MLOPS_MODEL_CACHE", "PORT", "MLOPS_MODEL_NAME",
            "MLOPS_MODEL_VERSION", "MLOPS_MODEL_DIR", "MLOPS_MODEL_DIGEST", "MLOPS_PREDICTOR_THREADS"))
        return _run(args, started, home, cleanup)


def _run(args, started: datetime, home: Path, cleanup: ExitStack) -> int:
    import orjson
    import pandas as pd
    from common import register_served_model

    from mlops.features import store as feature_store
    from mlops.platform.local import HOST, free_ports
    from mlops.platform.processes import http_ok, start_process, stop_processes, wait_until_ready
    from mlops.platform.storage import ObjectStore
    from mlops.registry.model_files import fetch_model, load_model, resolve_model
    from mlops.serving.routing import Routing, ShadowTarget, write_routing

    work = home / "bench"
    work.mkdir()
    store = ObjectStore.from_env()
    project, second = example_project(PROJECT), example_project(SECOND)
    if project.names.model != MODEL_NAME:
        raise RuntimeError(f"the {PROJECT} project's model is {project.names.model}, not {MODEL_NAME}")
    if project.entity.type != "string":
        raise RuntimeError(f"the batch bodies send {PROJECT}'s ids as a BYTES tensor; its ids are "
                           f"{project.entity.type}")
    ENTITY_KEY = project.entity.key

    # -- 1. one model for everyone ------------------------------------------------------
    progress(f"{PROJECT}: generating {ROWS:,} rows (seed {SEED}) to {DATA_URI}, build_features (Feast apply + "
             "materialize), retrieve_training_data + train_and_log + register ...")
    served = register_served_model(work, store, DATA_URI, project, EXPERIMENT, ROWS, SEED)
    version, features, trained, raw = served.version, served.features, served.trained, served.raw
    progress(f"  {features.rows:,} feature rows; online window {features.materialized[0]:%Y-%m-%d} .. "
             f"{features.materialized[1]:%Y-%m-%d}")
    ref = resolve_model(MODEL_NAME, version)
    model_dir = fetch_model(ref, work / "models")
    model_bytes = sum(p.stat().st_size for p in model_dir.rglob("*") if p.is_file())
    progress(f"  {MODEL_NAME} v{version} ({ref.digest[:19]}...), validation ROC AUC "
             f"{trained.trained.metrics.get('roc_auc', float('nan')):.3f}; files in {model_dir}")
    progress(f"{SECOND}: generating {ROWS:,} rows (seed {SEED}) to {SECOND_DATA_URI}, the same stages ...")
    # Not work/<name>: the servers run in work, where a folder named like the example would shadow it
    # (`--project churn` resolves a folder of that name before the example).
    second_served = register_served_model(work / f"project-{SECOND}", store, SECOND_DATA_URI, second, EXPERIMENT,
                                          ROWS, SEED)
    progress(f"  {second.names.model} v{second_served.version}, validation ROC AUC "
             f"{second_served.trained.trained.metrics.get('roc_auc', float('nan')):.3f}")

    # -- 2. the request rows -------------------------------------------------------------
    loaded = load_model(model_dir, ref.digest)
    columns = [name for name, _ in loaded.columns]
    numeric = {name for name, kind in loaded.columns if kind != "string"}
    test = pd.read_parquet(work / "test.parquet")
    sample = test.sample(n=SAMPLE, random_state=SEED)[columns].reset_index(drop=True)
    sample = sample.astype({c: "float64" for c in numeric})
    rows = [{c: (None if pd.isna(v) else (float(v) if c in numeric else str(v))) for c, v in rec.items()}
            for rec in sample.to_dict("records")]
    frames = [sample.iloc[[i]] for i in range(SAMPLE)]
    expected = loaded.estimator.predict_proba(sample)[:, 1]
    expected_class = loaded.estimator.predict(sample)
    missing_rows = int(sample.isna().any(axis=1).sum())

    fs = feature_store.open_store(feature_store.FeatureStoreConfig.from_env(), project)
    rng = np.random.default_rng(SEED)
    candidates = rng.choice(raw[ENTITY_KEY].unique(), size=4 * SAMPLE, replace=False).tolist()
    online = feature_store.online_features(fs, candidates)
    known = online.loc[online[columns].notna().any(axis=1), ENTITY_KEY].tolist()
    if len(known) < SAMPLE:
        raise RuntimeError(f"only {len(known)} of {len(candidates)} sampled customers have online features")
    customers = known[:SAMPLE]
    progress(f"request rows: {SAMPLE} test-set rows ({missing_rows} with a missing value), {SAMPLE} customers "
             f"with online features")

    # -- 3. in-process floor ---------------------------------------------------------------
    from mlops.serving.predictor import ServedModel, decision_threshold

    threshold = decision_threshold(project)
    ours = ServedModel(MODEL_NAME, version, loaded, threshold)
    v1 = [{"instances": [r]} for r in rows]
    ours_answer = [run_coroutine(ours.predict(p))["predictions"][0]["probability"] for p in v1]
    if not np.allclose(ours_answer, expected, rtol=0, atol=1e-12):
        raise RuntimeError("our predictor's predict() in-process differs from predict_proba on the same rows")
    progress(f"in-process: {INPROCESS_CALLS:,} calls each of predict_proba, the bare predict, ours, from_v1, "
             "online_features ...")
    est = loaded.estimator
    from mlops.serving.transformer import FeatureTransformer, predictor_body

    transformer = FeatureTransformer(MODEL_NAME, "http://127.0.0.1:9", fs)  # lookup only: never calls out
    looked_up = [transformer.lookup([c]) for c in customers]
    # The servers run with one OpenMP thread (SERVER_ENV), so the in-process pieces do too; one row for the default.
    floor = one_openmp_thread(lambda: {
        "predict_proba": median_of_calls(lambda f: est.predict_proba(f)[:, 1], frames, INPROCESS_CALLS),
        "bare_predict": median_of_calls(lambda p: est.predict_proba(pd.DataFrame(p["instances"]))[:, 1].tolist(),
                                        v1, INPROCESS_CALLS),
        "our_predict": median_of_calls(lambda p: run_coroutine(ours.predict(p)), v1, INPROCESS_CALLS),
        "from_v1": median_of_calls(ours.schema.from_v1, v1, INPROCESS_CALLS),
        "online_features": median_of_calls(lambda c: feature_store.online_features(fs, [c]), customers,
                                           INPROCESS_CALLS),
        "lookup": median_of_calls(lambda c: transformer.lookup([c]), customers, INPROCESS_CALLS),
        "predictor_body": median_of_calls(lambda f: predictor_body(f, project), looked_up, INPROCESS_CALLS),
    })
    floor["predict_proba_default_threads"] = median_of_calls(lambda f: est.predict_proba(f)[:, 1], frames,
                                                             INPROCESS_CALLS)
    progress("  " + ", ".join(f"{k} {v:.3f} ms" for k, v in floor.items()))

    # -- 4. the servers ----------------------------------------------------------------------
    names = ["bare", "mlflow", "predictor", "shadow_predictor", "transformer"]
    port = free_ports(names)
    url = {k: f"http://{HOST}:{p}" for k, p in port.items()}
    logs = work / "logs"
    predictor_cmd = [sys.executable, "-m", "mlops.serving.predictor", "--project", PROJECT, "--model-name", MODEL_NAME,
                     "--model-dir", str(model_dir), "--model-digest", ref.digest, "--model-version", version,
                     "--cache-dir", str(work / "models"), "--host", HOST]
    commands = {
        "bare": [sys.executable, str(BENCH_DIR / "bare_kserve_server.py"), "--model-name", MODEL_NAME,
                 "--model-dir", str(model_dir), "--host", HOST, "--http-port", str(port["bare"])],
        "mlflow": [sys.executable, "-m", "mlflow", "models", "serve", "-m", str(model_dir), "--host", HOST,
                   "--port", str(port["mlflow"]), "--env-manager", "local"],
        "predictor": [*predictor_cmd, "--http-port", str(port["predictor"])],
        "shadow_predictor": [*predictor_cmd, "--http-port", str(port["shadow_predictor"])],
        "transformer": [sys.executable, "-m", "mlops.serving.transformer", "--project", PROJECT,
                        "--model-name", MODEL_NAME, "--predictor-url", url["predictor"], "--host", HOST,
                        "--http-port", str(port["transformer"])],
    }
    ready_path = {k: f"/v2/models/{MODEL_NAME}/ready" for k in names}
    ready_path["mlflow"] = "/health"
    write_routing(store, MODEL_NAME, Routing())  # no shadow until a measurement asks for it
    services = {}
    cleanup.callback(lambda: progress(f"stopped: {', '.join(stop_processes(list(services.values()))) or 'nothing'}"))
    progress(f"starting the servers (logs in {logs}): " + ", ".join(f"{k} :{port[k]}" for k in names))
    for key in names:
        # mlflow serve execs `uvicorn` through bash: the venv's bin must be on PATH, as in an activated venv.
        services[key] = start_process(key, commands[key], url[key], logs, cwd=work, extra_env={
            **SERVER_ENV, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"})
    for key in names:
        t0 = time.perf_counter()
        wait_until_ready(services[key], lambda k=key: http_ok(url[k] + ready_path[k]), READY_TIMEOUT_S, RuntimeError)
        progress(f"  {key} ready at {url[key]} (waited {time.perf_counter() - t0:.1f} s)")

    # -- 5. same model everywhere? --------------------------------------------------------------
    paths = {"bare": f"/v1/models/{MODEL_NAME}:predict", "mlflow": "/invocations",
             "predictor": f"/v1/models/{MODEL_NAME}:predict", "transformer": f"/v1/models/{MODEL_NAME}:predict",
             "shadow": f"/v1/models/{MODEL_NAME}:predict"}
    bodies = {
        "bare": [orjson.dumps(p) for p in v1],
        "mlflow": [orjson.dumps({"dataframe_records": [r]}) for r in rows],
        "predictor": [orjson.dumps(p) for p in v1],
        "transformer": [orjson.dumps({"instances": [{ENTITY_KEY: c}]}) for c in customers],
    }
    bodies["shadow"] = bodies["transformer"]
    target = {"bare": "bare", "mlflow": "mlflow", "predictor": "predictor", "transformer": "transformer",
              "shadow": "transformer"}
    got = {
        "bare": [orjson.loads(post_once(port["bare"], paths["bare"], b))["predictions"][0] for b in bodies["bare"]],
        "predictor": [orjson.loads(post_once(port["predictor"], paths["predictor"], b))["predictions"][0]["probability"]
                      for b in bodies["predictor"]],
        "mlflow": [orjson.loads(post_once(port["mlflow"], paths["mlflow"], b))["predictions"][0]
                   for b in bodies["mlflow"]],
    }
    max_diff = max(float(np.max(np.abs(np.asarray(got[k]) - expected))) for k in ("bare", "predictor"))
    if max_diff > 1e-9:
        raise RuntimeError(f"the servers' probabilities differ from in-process predict_proba by up to {max_diff:g}")
    if list(np.asarray(got["mlflow"])) != list(expected_class):
        raise RuntimeError(f"mlflow serve's classes differ from predict(): {got['mlflow'][:10]} vs "
                           f"{list(expected_class[:10])}")
    answer = orjson.loads(post_once(port["transformer"], paths["transformer"], bodies["transformer"][0]))
    own = est.predict_proba(feature_store.online_features(fs, [customers[0]])[columns])[:, 1][0]
    if answer["model_version"] != version or abs(answer["predictions"][0]["probability"] - own) > 1e-9:
        raise RuntimeError(f"the transformer answered {answer} for {customers[0]}; expected v{version}, "
                           f"probability {own}")
    progress(f"all servers answer the same model (max probability difference {max_diff:.1e}; mlflow classes equal; "
             f"transformer {customers[0]} -> {own:.4f})")

    # -- 5b. the 100-row batches, as JSON and as binary tensors (built by tritonclient) --------------
    batch_bodies, batch_expected = batch_requests(sample, columns, numeric, customers, est, fs)
    v2_path = f"/v2/models/{MODEL_NAME}/infer"
    for key in BATCHES:
        server = key.split("-")[0]
        for body, want in zip(batch_bodies[key], batch_expected[server]):
            got_probability = batch_answer(post_once(port[server], v2_path, body))
            if float(np.max(np.abs(got_probability - want))) > 1e-9:
                raise RuntimeError(f"{key}: the 100-row answer differs from in-process predict_proba")
    progress(f"100-row batches: JSON and binary tensors answer the same probabilities as in-process, on both servers "
             f"(bodies: {', '.join(f'{k} {np.mean([len(b[0] if isinstance(b, tuple) else b) for b in v]) / 1024:.1f} KiB' for k, v in batch_bodies.items())})")

    # -- 6. measure -------------------------------------------------------------------------------
    transformer_port = port["transformer"]
    shadow_target = ShadowTarget(url["shadow_predictor"], version)

    def set_shadow(on: bool) -> None:
        if shadow_on(transformer_port, version) == on:
            return
        write_routing(store, MODEL_NAME, Routing(shadow_target if on else None))
        deadline = time.monotonic() + SWITCH_TIMEOUT_S
        while shadow_on(transformer_port, version) != on:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the transformer did not switch shadow mirroring {'on' if on else 'off'} within "
                                   f"{SWITCH_TIMEOUT_S:.0f} s of the routing document's change")
            time.sleep(0.1)
        progress(f"  shadow mirroring {'on' if on else 'off'} (transformer /metrics: mlops_shadow_target_info "
                 f"{1.0 if on else 0.0})")

    pid = {key: service.pid for key, service in services.items()}
    pids = {"bare": {"bare": pid["bare"]}, "mlflow": {"mlflow": pid["mlflow"]},
            "predictor": {"predictor": pid["predictor"]},
            "transformer": {"transformer": pid["transformer"], "predictor": pid["predictor"]},
            "shadow": {"transformer": pid["transformer"], "predictor": pid["predictor"],
                       "shadow_predictor": pid["shadow_predictor"]}}
    before = scrape(transformer_port)
    results = {key: [] for key in SERVERS}
    load_before = os.getloadavg()
    for rnd in range(ROUNDS):
        order = SERVERS[rnd % len(SERVERS):] + SERVERS[:rnd % len(SERVERS)]
        progress(f"[round {rnd + 1}/{ROUNDS}] {' -> '.join(order)}: {WARMUP} warm-up + {args.requests:,} requests each")
        for key in order:
            if key in ("transformer", "shadow"):
                set_shadow(key == "shadow")
            lines0 = log_lines(services[target[key]].log)
            r = measure(port[target[key]], paths[key], bodies[key], WARMUP, args.requests, pids[key])
            r["log_lines"] = (log_lines(services[target[key]].log) - lines0) / (WARMUP + args.requests)
            results[key].append(r)
            split = f" ({', '.join(f'{k} {v:.2f}' for k, v in r['cpu_ms'].items())})" if len(r["cpu_ms"]) > 1 else ""
            progress(f"  {key}: {r['rps']:,.0f} req/s, p50 {r['p50']:.2f} ms, p99 {r['p99']:.2f} ms, "
                     f"max {r['max']:.1f} ms; server CPU {r['server_cpu_ms']:.2f} ms/request{split}")
    set_shadow(False)
    batch_requests_n = max(100, args.requests // BATCH_SHARE)
    batches = {key: [] for key in BATCHES}
    for rnd in range(ROUNDS):
        order = BATCHES[rnd % len(BATCHES):] + BATCHES[:rnd % len(BATCHES)]
        progress(f"[batch round {rnd + 1}/{ROUNDS}] {' -> '.join(order)}: {BATCH_WARMUP} warm-up + "
                 f"{batch_requests_n:,} requests of {BATCH_ROWS} rows each")
        for key in order:
            server = key.split("-")[0]
            r = measure(port[server], v2_path, batch_bodies[key], BATCH_WARMUP, batch_requests_n, pids[server])
            r["body_bytes"] = float(np.mean([len(b[0] if isinstance(b, tuple) else b) for b in batch_bodies[key]]))
            batches[key].append(r)
            progress(f"  {key}: {r['rps']:,.0f} req/s ({r['rps'] * BATCH_ROWS:,.0f} rows/s), p50 {r['p50']:.2f} ms, "
                     f"p99 {r['p99']:.2f} ms; server CPU {r['server_cpu_ms']:.2f} ms/request")
    load = (load_before, os.getloadavg())
    time.sleep(0.5)  # the last mirrors settle
    after = scrape(transformer_port)

    def delta(name: str, **labels: str) -> int:
        return int(round(metric(after, name, **labels) - metric(before, name, **labels)))

    shadow = {"mirrored": delta("mlops_upstream_requests_total", role="shadow", outcome="ok"),
              "errors": delta("mlops_upstream_requests_total", role="shadow", outcome="error"),
              "skipped": delta("mlops_shadow_skipped_total"),
              "agree": delta("mlops_shadow_rows_total", agree="yes"),
              "disagree": delta("mlops_shadow_rows_total", agree="no")}
    sent = ROUNDS * (WARMUP + args.requests)
    shadow["sent"] = sent
    progress(f"shadow: {shadow['mirrored']:,} of {sent:,} shadow-phase requests mirrored, {shadow['skipped']} "
             f"skipped, {shadow['errors']} failed; agreement {shadow['agree']:,} / "
             f"{shadow['agree'] + shadow['disagree']:,}")
    if shadow["mirrored"] == 0:
        raise RuntimeError(f"the shadow answered none of the {sent} requests sent while mirroring was on: the "
                           "shadow measurement did not mirror")

    # -- 7. report --------------------------------------------------------------------------------
    # -- 6b. the second project, its own servers, measured with the first project's idle ------------------
    second_run = measure_second_project(args, second, second_served, work, store, cleanup)

    # -- 7. report --------------------------------------------------------------------------------
    ev = evaluate(results)
    info = {"version": version, "columns": columns, "roc_auc": trained.trained.metrics.get("roc_auc", math.nan),
            "max_iter": trained.trained.params.get("max_iter"), "model_bytes": model_bytes, "threshold": threshold,
            "max_diff": max_diff, "shadow": shadow}
    second_ev = evaluate_second(second_run["results"])
    print()
    print(SECTION)
    print()
    print(results_table(ev))
    print()
    print(goals_table(ev))
    print()
    print(floor_table(floor))
    print()
    print(batch_table(batches))
    print()
    print(second_table(second_ev, second_run["info"]))
    print()
    print(goals_table(second_ev))
    print()
    print(second_floor_table(second_run["floor"]))
    print()
    out_dir = home / "out" if args.quick else OUT_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "serving-results.json").write_text(json.dumps(
        {"results": results, "batches": batches, "floor": floor,
         "info": {k: v for k, v in info.items() if k != "columns"},
         "load": load, "requests": args.requests,
         SECOND: {k: v for k, v in second_run.items() if k != "info"} | {
             "info": {k: v for k, v in second_run["info"].items() if k != "columns"}}}, indent=2, default=str))
    section = section_text(results, ev, floor, info, args, started, load, batches) + "\n\n" + \
        second_section_text(second_run, second_ev, args)
    if args.quick:
        print(section)
        print()
        progress(f"--quick: {RESULTS.relative_to(ROOT)} left as it is (numbers in {out_dir / 'serving-results.json'})")
    elif args.requests == REQUESTS:
        write_results(section, SECTION)
        progress(f"wrote {RESULTS.relative_to(ROOT)}")
    else:
        progress(f"--requests {args.requests} is not the default ({REQUESTS}): {RESULTS.relative_to(ROOT)} "
                 "left as it is")
    return 0


if __name__ == "__main__":
    sys.exit(main())
