"""Load test of the local serving path: transformer + splitter + predictor under locust, on 127.0.0.1.

``make bench`` runs ``.venv/bin/python bench/bench_load.py``. It

1. starts its own local platform (S3 + MLflow) on free 127.0.0.1 ports with its
   state in a temporary MLOPS_HOME, and stops it at the end, even on failure;
2. builds one model of the credit-default example project the way
   bench_serving.py does: the example's own generator (``generate_data(project,
   20000, seed=7)``, examples/credit-default/data.py) to S3, ``build_features``
   (Feast apply + materialize into the SQLite online store),
   ``retrieve_training_data``, ``train_and_log`` (the project's model params),
   ``register``;
3. serves that version exactly as ``mlops serve up --project credit-default``
   does (``LocalServing(project).up``:
   predictor, traffic splitter, transformer with its request log on, each its own
   process on 127.0.0.1), and stops them at the end (``LocalServing.down``);
4. drives the transformer with locust (``FastHttpUser``) in a separate process per
   phase (this file run with ``--locust-worker``: locust monkey-patches the
   standard library with gevent when imported, so it is never imported here).
   Every request is one customer id that the online store holds
   (``traffic_replay.known_ids(project)``, each checked with ``online_features``),
   alternately V1 ``{"instances": [{"customer_id": id}]}`` and V2 (one BYTES
   tensor), the bodies ``traffic_replay.replay`` sends
   (``traffic_replay.request_body``). A request counts as an
   error unless it answers 200 with predictions (V1) or outputs (V2); connection
   errors and timeouts count too. Phases:

   a. **unloaded**: one user, one request at a time, UNLOADED_WARMUP + UNLOADED_REQUESTS
      requests: the unloaded p99 the latency goal is relative to;
   b. **search** for the maximum sustainable rate: steps of ``--step-seconds`` at
      an offered rate (STEP_WARMUP_S unmeasured first). The offered rate is a fixed
      schedule (request k is due at k / rate seconds) shared by LOADED_USERS users,
      so a slow answer does not lower the rate while a user is free (open loop up to
      LOADED_USERS requests in flight). A step *holds* when it had 0 errors, its
      achieved rate (requests sent inside the measured window / its length) is at
      least ACHIEVED_MIN of the offered one, and its p95 is within the latency bound
      of the goal (below). p95, not p99: a single stall of a few hundred ms in a
      short step (a full garbage collection in a server, other work on the
      machine) would otherwise decide the capacity by chance; the tail is judged
      over the long sustained phase. The search starts at START_FRACTION of the
      one-client capacity measured in (a) (1000 / mean ms), multiplies the rate by
      RAMP while steps hold, then bisects between the highest rate that held and the
      lowest that did not until they are within BISECT_RESOLUTION (at most
      MAX_SEARCH_STEPS steps). The maximum sustainable rate is the highest offered
      rate that held;
   c. **sustained**: SUSTAIN_FRACTION of that maximum for ``--sustain-seconds``
      (default 60) after SUSTAIN_WARMUP_S of warm-up, while this process samples the
      resident memory (VmRSS from /proc/<pid>/status) of the transformer, splitter
      and predictor every RSS_INTERVAL_S.
5. prints a Markdown section (phases, RSS, verdicts) and writes the same numbers
   to bench/out/load.json. It does not write bench/RESULTS.md.

``--quick`` checks the script end to end: 5,000 training rows, 200 ids, a short
unloaded phase, at most two search steps of 3 s and a 10 s sustained phase, its
phase files and numbers in the temporary MLOPS_HOME (nothing in bench/).

Goals (verdicts): the sustained phase has 0 errors; its p99 is within the latency
goal; each server's RSS grows by less than RSS_GROWTH_MAX from the first sample
after warm-up to the last. The project's rollout policy (examples/credit-default/rollout.yaml)
sets no absolute latency bound (only p50/p99 ratios against the stable version,
p99 at most 5x), so the goal is relative, in the same spirit: p99 at 80% load at
most P99_FACTOR x the unloaded p99 measured in the same run. The requests of the
sustained phase slower than that bound are grouped into stall episodes (sent
within STALL_GAP_S of each other), to tell a few stalls from a general slowdown.
This is a benchmark: it exits 0 whatever the verdicts, unless ``--strict``.

Bounded: at most MAX_USERS users, MAX_RATE req/s, MAX_PHASE_REQUESTS requests per
phase, MAX_TOTAL_REQUESTS in all, MAX_PHASE_SECONDS per phase and MAX_RUN_SECONDS
for the whole run; only 127.0.0.1 is targeted. Every process it starts (platform,
servers, locust workers, each in its own process group) is stopped on exit,
Ctrl-C or SIGTERM included.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / "bench"
OUT_DIR = BENCH_DIR / "out"
OUT_JSON = OUT_DIR / "load.json"
PHASE_DIR = OUT_DIR / "load"  # each phase's spec, worker log and numbers (with every request's latency)
SECTION = "## Load (transformer + splitter + predictor under locust)"

ROWS = 20_000
SEED = 7
DATA_URI = "s3://mlops/bench/load-20k.parquet"
PROJECT = "credit-default"  # the example project served
MODEL_NAME = "credit-default"  # its names.model (checked against the project in _run)
EXPERIMENT = "bench-load"
IDS = 1_000  # distinct customers the requests cycle through

# Phases
UNLOADED_WARMUP = 50
UNLOADED_REQUESTS = 500
LOADED_USERS = 32  # users sharing the schedule: at most this many requests in flight
STEP_SECONDS = 6.0
STEP_WARMUP_S = 1.0
START_FRACTION = 0.6  # first search step, of the one-client capacity
RAMP = 1.4
BISECT_RESOLUTION = 0.05  # stop bisecting when (lowest failed - highest held) <= this share of the held rate
MAX_SEARCH_STEPS = 8
MIN_RATE = 5
ACHIEVED_MIN = 0.95
SUSTAIN_FRACTION = 0.8
SUSTAIN_SECONDS = 60.0
SUSTAIN_WARMUP_S = 5.0
RSS_INTERVAL_S = 1.0
STALL_GAP_S = 1.0

# Goals
P99_FACTOR = 5.0
RSS_GROWTH_MAX = 0.10

# Hard caps
MAX_USERS = 64
MAX_RATE = 2_000
MAX_PHASE_SECONDS = 130.0
MAX_PHASE_REQUESTS = 150_000
MAX_TOTAL_REQUESTS = 400_000
MAX_RUN_SECONDS = 480.0
REQUEST_TIMEOUT_S = 10.0
WORKER_GRACE_S = 45.0  # a worker's start-up and drain beyond its phase, before it is killed

LOOPBACK = "127.0.0.1"
SERVERS = ("transformer", "splitter", "predictor")


# =====================================================================================
# The locust worker (its own process: `bench_load.py --locust-worker SPEC OUT`)
# =====================================================================================
def locust_worker(spec_path: str, out_path: str) -> int:
    """Run one phase with locust's library API and write its numbers as JSON.

    The spec names the transformer URL (127.0.0.1 only), the model, the customer
    ids and their request bodies (``traffic_replay.request_body``, JSON-encoded by
    the parent: this process imports nothing of the suite), the users, the offered
    ``rate`` (None: one request after the other), the warm-up and the measured
    window (seconds, or request counts when unpaced).
    """
    from urllib.parse import urlsplit

    import gevent  # locust patches the standard library with gevent on import; this process only
    import numpy as np
    from locust import FastHttpUser, constant, task
    from locust.env import Environment
    from locust.exception import StopUser

    spec = json.loads(Path(spec_path).read_text())
    parts = urlsplit(spec["url"])
    if parts.hostname != LOOPBACK or parts.scheme != "http":
        raise SystemExit(f"refusing to load {spec['url']}: this benchmark targets http://{LOOPBACK} only")
    users = int(spec["users"])
    rate = spec["rate"]
    if not 1 <= users <= MAX_USERS:
        raise SystemExit(f"users must be in [1, {MAX_USERS}], got {users}")
    if rate is not None and not 0 < rate <= MAX_RATE:
        raise SystemExit(f"rate must be in (0, {MAX_RATE}], got {rate}")
    warmup_s, seconds = float(spec["warmup_s"]), float(spec["seconds"])
    if warmup_s + seconds > MAX_PHASE_SECONDS:
        raise SystemExit(f"a phase may last {MAX_PHASE_SECONDS:.0f} s at most, asked {warmup_s + seconds:.0f} s")
    if rate is not None:
        warm_slots = math.ceil(warmup_s * rate)
        total_slots = min(warm_slots + math.ceil(seconds * rate), MAX_PHASE_REQUESTS)
    else:
        warm_slots = int(spec["warmup_requests"])
        total_slots = min(warm_slots + int(spec["requests"]), MAX_PHASE_REQUESTS)
    model = spec["model"]
    ids = spec["ids"]
    paths = {"v1": f"/v1/models/{model}:predict", "v2": f"/v2/models/{model}/infer"}
    markers = {"v1": b'"predictions"', "v2": b'"outputs"'}
    bodies = {proto: [body.encode() for body in encoded] for proto, encoded in spec["bodies"].items()}
    if any(len(encoded) != len(ids) for encoded in bodies.values()):
        raise SystemExit("the spec needs one request body per id and protocol")
    headers = {"Content-Type": "application/json"}
    protocols = spec["protocols"]

    # one record per request: slot, send time (s after t0), latency (ms), ok, status, protocol index
    slot_of, sent_at, latency, ok_of, status_of, proto_of = [], [], [], [], [], []
    errors_seen: dict[str, int] = {}
    # "pending": slots claimed and not finished (a user claims its slot, then sleeps until it is due)
    state = {"next": 0, "pending": 0, "t0": 0.0}
    deadline_rel = warmup_s + seconds  # nothing is sent after this (paced), or after warm-up + seconds (unpaced cap)
    clock = time.perf_counter

    def claim() -> int | None:
        k = state["next"]
        if k >= total_slots:
            return None
        now = clock() - state["t0"]
        if now >= deadline_rel:
            return None
        if rate is not None:
            due = k / rate
            if due >= deadline_rel:
                return None
            state["next"] = k + 1
            state["pending"] += 1
            if due > now:
                gevent.sleep(due - now)
        else:
            state["next"] = k + 1
            state["pending"] += 1
        return k

    class LoadUser(FastHttpUser):
        host = spec["url"]
        wait_time = constant(0)
        network_timeout = REQUEST_TIMEOUT_S
        connection_timeout = REQUEST_TIMEOUT_S
        max_retries = 0

        @task
        def one(self) -> None:
            k = claim()
            if k is None:
                raise StopUser()
            proto = protocols[k % len(protocols)]
            body = bodies[proto][(k * 7919) % len(ids)]  # a fixed stride through the ids
            start = clock()
            try:
                with self.client.post(paths[proto], data=body, headers=headers, catch_response=True,
                                      name=proto) as resp:
                    elapsed = (clock() - start) * 1000
                    status = resp.status_code or 0
                    good = status == 200 and resp.content is not None and markers[proto] in resp.content
                    if not good:
                        why = (f"HTTP {status}" if status else f"connection: {type(resp.error).__name__}")
                        errors_seen[why] = errors_seen.get(why, 0) + 1
                        if len(errors_seen) <= 20 and errors_seen[why] == 1:
                            detail = (resp.content or b"")[:200] if status else repr(resp.error)
                            print(f"first {why}: {detail!r}", flush=True)
                        resp.failure(why)
                    else:
                        resp.success()
            finally:
                state["pending"] -= 1
            slot_of.append(k)
            sent_at.append(start - state["t0"])
            latency.append(elapsed)
            ok_of.append(good)
            status_of.append(status)
            proto_of.append(protocols.index(proto))

    import logging

    logging.getLogger("locust").setLevel(logging.ERROR)  # the spawn-rate and CPU warnings: we report CPU ourselves
    env = Environment(user_classes=[LoadUser])
    runner = env.create_local_runner()
    cpu0 = time.process_time()
    wall0 = time.time()
    state["t0"] = clock() + 0.3  # users are spawned before the first slot is due
    runner.start(users, spawn_rate=max(users, 1) * 10)
    measure_start_epoch = wall0 + 0.3 + (warmup_s if rate is not None else 0.0)
    # wait for the schedule to run out, then for the requests in flight (bounded)
    hard_end = state["t0"] + deadline_rel + REQUEST_TIMEOUT_S + 2
    while clock() < hard_end:
        gevent.sleep(0.05)
        sending_over = state["next"] >= total_slots or clock() - state["t0"] >= deadline_rel
        if sending_over and state["pending"] == 0:
            break
    unfinished = state["pending"]
    runner.quit()
    cpu = time.process_time() - cpu0
    wall = time.time() - wall0

    slot = np.asarray(slot_of, dtype=np.int64)
    sent = np.asarray(sent_at)
    lat = np.asarray(latency)
    ok = np.asarray(ok_of, dtype=bool)
    proto = np.asarray(proto_of, dtype=np.int64)
    measured = slot >= warm_slots
    if rate is not None:
        in_window = measured & (sent >= warmup_s) & (sent < warmup_s + seconds)
        window_s = seconds
    else:
        in_window = measured
        if in_window.any():
            first = sent[in_window].min()
            window_s = float((sent[in_window] + lat[in_window] / 1000).max() - first)
            measure_start_epoch = wall0 + 0.3 + float(first)
        else:
            window_s = float("nan")

    def pct(values) -> dict:
        if len(values) == 0:
            return {"p50": None, "p95": None, "p99": None, "max": None, "mean": None}
        p50, p95, p99 = np.percentile(values, [50, 95, 99])
        return {"p50": float(p50), "p95": float(p95), "p99": float(p99), "max": float(values.max()),
                "mean": float(values.mean())}

    w_lat, w_sent = lat[in_window], sent[in_window]
    timeline = []
    if rate is not None and len(w_lat):
        for lo in np.arange(warmup_s, warmup_s + seconds, 10.0):
            sel = (w_sent >= lo) & (w_sent < lo + 10.0)
            if sel.any():
                timeline.append({"from_s": float(lo - warmup_s), "requests": int(sel.sum()),
                                 "p99": float(np.percentile(w_lat[sel], 99))})
    stats = env.stats.total
    result = {
        "rate": rate, "users": users, "warmup_s": warmup_s, "seconds": seconds, "warmup_requests": warm_slots,
        "scheduled": total_slots, "sent": int(len(slot)) + unfinished, "answered": int(len(slot)),
        "unfinished": unfinished,
        "errors": int((~ok).sum()) + unfinished, "errors_measured": int((~ok[in_window]).sum()),
        "error_kinds": errors_seen, "requests": int(in_window.sum()), "window_s": window_s,
        "achieved": (float(in_window.sum()) / window_s) if window_s and window_s > 0 else None,
        "latency_ms": pct(w_lat),
        "by_protocol": {p: {"requests": int((in_window & (proto == i)).sum()), **pct(lat[in_window & (proto == i)])}
                        for i, p in enumerate(protocols)},
        "lag_ms_p99": (float(np.percentile(np.maximum(0.0, w_sent - slot[in_window] / rate) * 1000, 99))
                       if rate is not None and len(w_sent) else None),
        "timeline": timeline,
        "measure_start_epoch": measure_start_epoch, "measure_end_epoch": measure_start_epoch + (window_s or 0),
        "client_cpu_share": cpu / wall if wall > 0 else None,
        "locust_totals": {"requests": stats.num_requests, "failures": stats.num_failures},
        # every answered request (s after the schedule's start, ms, ok, protocol): the phase's file keeps them for
        # a closer look at the tail; load.json does not
        "raw": {"sent_s": [round(x, 4) for x in sent.tolist()], "latency_ms": [round(x, 3) for x in lat.tolist()],
                "ok": ok.tolist(), "protocol": [protocols[i] for i in proto.tolist()]},
    }
    Path(out_path).write_text(json.dumps(result))
    return 0


# =====================================================================================
# The benchmark (this process never imports locust)
# =====================================================================================
class Deadline(Exception):
    pass


class Bench:
    """Runs the phases; remembers every worker it started so cleanup can stop them."""

    def __init__(self, url: str, ids: list, bodies: dict[str, list[str]], logs: Path, started: float) -> None:
        self.url, self.ids, self.bodies, self.logs, self.started = url, ids, bodies, logs, started
        self.workers: list = []  # live subprocess.Popen
        self.total_requests = 0
        self.n = 0
        self.last_raw: dict | None = None  # every request of the last phase

    def stop_workers(self) -> None:
        import signal
        import subprocess

        for proc in self.workers:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
        self.workers.clear()

    def run(self, name: str, *, rate: float | None, users: int, warmup_s: float = 0.0, seconds: float,
            warmup_requests: int = 0, requests: int = 0, during=None) -> dict:
        """One phase in a fresh locust worker; ``during(proc)`` is called every RSS_INTERVAL_S while it runs."""
        import subprocess

        from common import progress

        planned = (math.ceil((warmup_s + seconds) * rate) if rate is not None else warmup_requests + requests)
        if self.total_requests + planned > MAX_TOTAL_REQUESTS:
            raise Deadline(f"phase {name} would exceed the cap of {MAX_TOTAL_REQUESTS:,} requests in all")
        if time.monotonic() - self.started + warmup_s + seconds + WORKER_GRACE_S > MAX_RUN_SECONDS:
            raise Deadline(f"phase {name} would run past the cap of {MAX_RUN_SECONDS:.0f} s for the whole run")
        self.n += 1
        spec = self.logs / f"load-{self.n:02d}-{name}.spec.json"
        out = self.logs / f"load-{self.n:02d}-{name}.json"
        log = self.logs / f"load-{self.n:02d}-{name}.log"
        spec.write_text(json.dumps({"url": self.url, "model": MODEL_NAME, "ids": self.ids, "bodies": self.bodies,
                                    "rate": rate,
                                    "users": users, "warmup_s": warmup_s, "seconds": seconds,
                                    "warmup_requests": warmup_requests, "requests": requests,
                                    "protocols": ["v1", "v2"]}))
        out.unlink(missing_ok=True)
        with open(log, "w") as fh:
            proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--locust-worker", str(spec),
                                     str(out)], cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        self.workers.append(proc)
        limit = time.monotonic() + warmup_s + seconds + WORKER_GRACE_S
        try:
            while proc.poll() is None:
                if time.monotonic() > limit:
                    raise RuntimeError(f"the locust worker for {name} did not finish in time; see {log}")
                if during is not None:
                    during(proc)
                time.sleep(RSS_INTERVAL_S if during is not None else 0.1)
        finally:
            self.stop_workers()
        if proc.returncode != 0 or not out.exists():
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
            raise RuntimeError(f"the locust worker for {name} exited with {proc.returncode}; see {log}:\n{tail}")
        result = json.loads(out.read_text())
        self.last_raw = result.pop("raw", None)  # stays in the phase's own file
        self.total_requests += result["sent"]
        result["phase"] = name
        lat = result["latency_ms"]
        achieved = result["achieved"]
        progress(f"  {name}: offered {fmt(rate, 'g')} req/s, achieved "
                 f"{fmt(achieved)} req/s, {result['requests']:,} measured requests, {result['errors']} errors, "
                 f"p50/p95/p99 {fmt(lat['p50'])}/{fmt(lat['p95'])}/{fmt(lat['p99'])} ms, "
                 f"client CPU {100 * (result['client_cpu_share'] or 0):.0f}%")
        return result


def holds(step: dict, bound_ms: float) -> tuple[bool, str]:
    """Whether a search step held, and why not."""
    why = []
    if step["errors"]:
        why.append(f"{step['errors']} errors")
    if step["achieved"] is None or step["achieved"] < ACHIEVED_MIN * step["rate"]:
        why.append(f"achieved {step['achieved'] or 0:.1f} < {ACHIEVED_MIN:.0%} of {step['rate']:g}")
    p95 = step["latency_ms"]["p95"]
    if p95 is None or p95 > bound_ms:
        why.append(f"p95 {p95 or float('nan'):.1f} ms > {bound_ms:.1f} ms")
    return not why, "; ".join(why)


def search_max(bench: Bench, capacity: float, p99_bound: float, step_seconds: float) -> tuple[float, list[dict]]:
    """Ramp, then bisect: the highest offered rate (req/s, whole numbers) whose step held."""
    from common import progress

    steps: list[dict] = []
    lo, hi = None, None  # highest held, lowest failed

    def step(rate: int) -> bool:
        r = bench.run(f"search-{rate}", rate=rate, users=LOADED_USERS, warmup_s=STEP_WARMUP_S, seconds=step_seconds)
        ok, why = holds(r, p99_bound)
        r["held"], r["why"] = ok, why
        steps.append(r)
        progress(f"    step {len(steps)}: {rate} req/s {'held' if ok else 'did not hold: ' + why}")
        return ok

    rate = max(MIN_RATE, min(MAX_RATE, round(START_FRACTION * capacity)))
    while len(steps) < MAX_SEARCH_STEPS:  # ramp up (or down, when the first step fails)
        if step(rate):
            lo = rate
            if hi is not None or rate >= MAX_RATE:
                break
            rate = min(MAX_RATE, math.ceil(rate * RAMP))
        else:
            hi = rate
            if lo is not None:
                break
            if rate <= MIN_RATE:
                break
            rate = max(MIN_RATE, math.floor(rate / RAMP))
    while lo is not None and hi is not None and hi - lo > max(1, BISECT_RESOLUTION * lo) \
            and len(steps) < MAX_SEARCH_STEPS:
        mid = (lo + hi) // 2
        if step(mid):
            lo = mid
        else:
            hi = mid
    if lo is None:
        raise RuntimeError(f"no step held, down to {MIN_RATE} req/s: nothing to sustain (see the steps above)")
    return float(lo), steps


def stall_episodes(raw: dict, warmup_s: float, seconds: float, bound_ms: float) -> dict:
    """Requests of the measured window slower than ``bound_ms``, grouped into episodes (sent < STALL_GAP_S apart)."""
    slow = sorted((s - warmup_s, lat) for s, lat in zip(raw["sent_s"], raw["latency_ms"])
                  if warmup_s <= s < warmup_s + seconds and lat > bound_ms)
    episodes: list[dict] = []
    for at, lat in slow:
        if episodes and at - episodes[-1]["last_s"] < STALL_GAP_S:
            e = episodes[-1]
            e["requests"] += 1
            e["last_s"] = at
            e["worst_ms"] = max(e["worst_ms"], lat)
        else:
            episodes.append({"at_s": at, "last_s": at, "requests": 1, "worst_ms": lat})
    return {"bound_ms": bound_ms, "slow_requests": len(slow), "episodes": episodes}


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for name in ("mlops-suite", "locust", "kserve", "feast", "uvicorn", "httpx", "scikit-learn"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def fmt(x, spec: str = ".1f") -> str:
    return "-" if x is None else format(x, spec)


def stalls_text(st: dict, requests: int) -> str:
    eps = st["episodes"]
    if not eps:
        return f"No request of the sustained window took longer than the bound ({st['bound_ms']:.1f} ms)."
    where = "; ".join(f"at {e['at_s']:.1f} s: {e['requests']} requests over {e['last_s'] - e['at_s']:.2f} s, "
                      f"worst {e['worst_ms']:.0f} ms" for e in eps[:10])
    return (f"{st['slow_requests']} of {requests:,} requests of the sustained window took longer than the bound "
            f"({st['bound_ms']:.1f} ms), in {len(eps)} episode(s) (requests sent less than {STALL_GAP_S:g} s apart): "
            f"{where}{'; ...' if len(eps) > 10 else ''}.")


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def report(res: dict) -> str:
    """The Markdown section, from the numbers in ``res`` (the same ones load.json gets)."""
    from common import machine

    m = machine()
    v = res["versions"]
    un, sus = res["unloaded"], res["sustained"]
    lines = [
        SECTION, "",
        f"- date: {res['date']}",
        f"- machine: {m['platform']}; {m['cpu']}; {m['memory']} RAM; Python {m['python']}",
        f"- load average (1 min) before / after the phases: {res['load_before'][0]:.2f} / {res['load_after'][0]:.2f} "
        f"(2 CPUs shared by locust, the transformer, the splitter and the predictor; other work on the machine "
        f"lowers the maximum found and raises the tail)",
        f"- versions: mlops-suite {v['mlops-suite']}, locust {v['locust']} (FastHttpUser), kserve {v['kserve']}, "
        f"feast {v['feast']}, uvicorn {v['uvicorn']}, httpx {v['httpx']}",
        f"- serving: `{MODEL_NAME}` v{res['model_version']} started as `mlops serve up --project {PROJECT}` does "
        f"(`LocalServing(project).up`: "
        f"predictor, splitter, transformer with its request log "
        f"{'OFF (--no-request-log)' if res['no_request_log'] else 'on'}, one process each on {LOOPBACK})",
        f"- requests: one customer each, {res['ids']:,} distinct customers the online store "
        f"holds, alternately V1 `{{\"instances\": [{{\"customer_id\": id}}]}}` and V2 (one BYTES tensor); an error "
        f"is any answer but 200 with predictions/outputs, or a connection error or timeout ({REQUEST_TIMEOUT_S:g} s)",
        f"- command: `.venv/bin/python bench/bench_load.py` (--sustain-seconds {res['sustain_seconds']:g}, "
        f"--step-seconds {res['step_seconds']:g}{' --no-request-log' if res['no_request_log'] else ''}); "
        f"run time {res['run_seconds']:.0f} s",
        "",
        "How the maximum was found: a step offers a rate as a fixed schedule (request k due at k/rate s) shared by "
        f"{LOADED_USERS} locust users, {STEP_WARMUP_S:g} s unmeasured then {res['step_seconds']:g} s measured. "
        f"It holds when it has 0 errors, achieves at least {ACHIEVED_MIN:.0%} of the offered rate, and its p95 "
        f"is within the latency bound of the goal ({res['p99_bound']:.1f} ms; p95, not p99, so that one stall in a "
        f"short step, such as a full garbage collection in a server, does not decide the capacity by chance: the "
        f"tail is judged over the sustained phase). The first step is {START_FRACTION:g} x the "
        f"one-client capacity of the unloaded phase (1000 / mean {un['latency_ms']['mean']:.2f} ms = "
        f"{res['capacity']:.0f} req/s). The rate goes up x{RAMP:g} while steps hold, then bisects between the "
        f"highest rate that held and the lowest that did not, to {BISECT_RESOLUTION:.0%} (at most "
        f"{MAX_SEARCH_STEPS} steps). Steps in order: "
        + ", ".join(f"{s['rate']:g} {'held' if s['held'] else 'failed'}" for s in res["search"])
        + f". **Maximum sustainable rate: {res['max_rate']:g} req/s**; sustained at "
          f"{SUSTAIN_FRACTION:.0%}: {sus['rate']:g} req/s.",
        "",
        "| phase | offered (req/s) | achieved (req/s) | requests | errors | p50 (ms) | p95 (ms) | p99 (ms) | held |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]

    def row(label: str, r: dict, held: str) -> str:
        lat = r["latency_ms"]
        return (f"| {label} | {fmt(r['rate'], 'g')} | {fmt(r['achieved'])} | {r['requests']:,} | {r['errors']} | "
                f"{fmt(lat['p50'], '.2f')} | {fmt(lat['p95'], '.2f')} | {fmt(lat['p99'], '.2f')} | {held} |")

    lines.append(row("unloaded (1 user, one request at a time)", un, "-"))
    for i, s in enumerate(res["search"], 1):
        lines.append(row(f"search step {i}", s, "yes" if s["held"] else f"no: {s['why']}"))
    lines.append(row(f"sustained {SUSTAIN_FRACTION:.0%} of max, {sus['seconds']:g} s", sus, "-"))
    lines += ["",
              "Errors count every request of a phase, warm-up included; requests and latencies are those sent in "
              "the measured window. Sustained phase by protocol: "
              + "; ".join(f"{p.upper()} {b['requests']:,} requests, p50 {fmt(b['p50'], '.2f')} ms, p99 "
                          f"{fmt(b['p99'], '.2f')} ms" for p, b in sus["by_protocol"].items())
              + f"; p99 per 10 s: {', '.join(fmt(t['p99'], '.1f') for t in sus['timeline'])} ms; locust's "
                f"CPU {100 * (sus['client_cpu_share'] or 0):.0f}% of one core. "
              + stalls_text(sus["stalls"], sus["requests"]),
              "",
              f"Resident memory (VmRSS) during the sustained phase, sampled every {RSS_INTERVAL_S:g} s from the first "
              f"sample after the {SUSTAIN_WARMUP_S:g} s warm-up to the end ({res['rss']['samples']} samples):",
              "",
              "| process | pid | start (MiB) | end (MiB) | max (MiB) | growth | < 10% |",
              "|---|---:|---:|---:|---:|---:|---|"]
    for name in SERVERS:
        r = res["rss"]["processes"][name]
        lines.append(f"| {name} | {r['pid']} | {r['start_kib'] / 1024:.1f} | {r['end_kib'] / 1024:.1f} | "
                     f"{r['max_kib'] / 1024:.1f} | {100 * r['growth']:+.1f}% | "
                     f"{verdict(r['growth'] < RSS_GROWTH_MAX)} |")
    g = res["goals"]
    lines += ["",
              "| goal (sustained phase) | target | measured | verdict |",
              "|---|---|---|---|",
              f"| errors (non-200, connection errors, timeouts) | 0 | {sus['errors']} of {sus['sent']:,} sent | "
              f"**{verdict(g['errors'])}** |",
              f"| p99 latency | <= {P99_FACTOR:g} x unloaded p99 ({un['latency_ms']['p99']:.2f} ms) = "
              f"{res['p99_bound']:.1f} ms | {sus['latency_ms']['p99']:.2f} ms | **{verdict(g['p99'])}** |",
              f"| RSS growth, first sample after warm-up to last, per server | < {RSS_GROWTH_MAX:.0%} | "
              + ", ".join(f"{n} {100 * res['rss']['processes'][n]['growth']:+.1f}%" for n in SERVERS)
              + f" | **{verdict(g['rss'])}** |",
              "",
              f"The p99 goal: the project's rollout policy (`examples/credit-default/rollout.yaml`) sets no absolute "
              f"latency bound, only ratios against the stable version (p99 at most 5x), so the goal used here is "
              f"p99 at "
              f"{SUSTAIN_FRACTION:.0%} of the measured maximum <= {P99_FACTOR:g} x the unloaded p99 measured in the "
              f"same run. Latency is measured by the client from send to the end of the answer (locust "
              f"FastHttpUser); the schedule's p99 lag (how late requests left) in the sustained phase was "
              f"{fmt(sus['lag_ms_p99'], '.1f')} ms."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import argparse
    import signal
    from contextlib import ExitStack
    from datetime import datetime, timezone

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sustain-seconds", type=float, default=SUSTAIN_SECONDS,
                        help=f"measured seconds of the sustained phase (default {SUSTAIN_SECONDS:g}; 10..120)")
    parser.add_argument("--step-seconds", type=float, default=STEP_SECONDS,
                        help=f"measured seconds of each search step (default {STEP_SECONDS:g}; 3..20)")
    parser.add_argument("--no-request-log", action="store_true",
                        help="serve without the transformer's request log (diagnosis; `mlops serve up` logs)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    parser.add_argument("--keep", action="store_true", help="keep the temporary MLOPS_HOME (logs, model, stores)")
    parser.add_argument("--quick", action="store_true",
                        help="a check, not a measurement: 5,000 rows, 200 ids, short phases; its files in the "
                             "temporary MLOPS_HOME, nothing in bench/")
    args = parser.parse_args(argv)
    if args.quick:
        args.sustain_seconds, args.step_seconds = 10.0, 3.0
    if not 10 <= args.sustain_seconds <= 120:
        parser.error("--sustain-seconds must be in [10, 120]")
    if not 3 <= args.step_seconds <= 20:
        parser.error("--step-seconds must be in [3, 20]")

    sys.path.insert(0, str(BENCH_DIR))
    from common import start_private_platform

    def on_signal(signum, frame):
        # Ctrl-C, SIGTERM, SIGHUP: unwind (the ExitStack stops every process this run started); a second
        # signal must not interrupt that cleanup, which is itself bounded (stop_processes kills after 10 s).
        for sig in handled:
            signal.signal(sig, signal.SIG_IGN)
        raise KeyboardInterrupt(f"stopped by signal {signal.Signals(signum).name}")

    handled = [signal.SIGTERM, signal.SIGHUP]
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:  # a background job keeps ignoring Ctrl-C
        handled.append(signal.SIGINT)
    for sig in handled:
        signal.signal(sig, on_signal)
    started = time.monotonic()
    date = datetime.now(timezone.utc)
    with ExitStack() as cleanup:
        home, _ = start_private_platform(cleanup, "mlops-bench-load-", args.keep, clear_vars=(
            "MLOPS_FEAST_ONLINE_STORE", "MLOPS_FEAST_REDIS", "MLOPS_FEAST_REGISTRY", "MLOPS_FEAST_REPO",
            "MLOPS_PREDICTOR_URL", "MLOPS_SERVING_HOST", "MLOPS_MODEL_CACHE", "PORT", "MLOPS_MODEL_NAME",
            "MLOPS_MODEL_VERSION", "MLOPS_MODEL_DIR", "MLOPS_MODEL_DIGEST", "MLOPS_PREDICTOR_THREADS"))
        if args.quick:
            _quick(home / "out")
        return _run(args, home, cleanup, started, date)


def _quick(out_dir: Path) -> None:
    """A --quick run's sizes, and its files in its own temporary folder."""
    global OUT_DIR, OUT_JSON, PHASE_DIR, ROWS, IDS, UNLOADED_WARMUP, UNLOADED_REQUESTS, MAX_SEARCH_STEPS
    OUT_DIR = out_dir
    OUT_JSON, PHASE_DIR = out_dir / "load.json", out_dir / "load"
    ROWS, IDS, UNLOADED_WARMUP, UNLOADED_REQUESTS, MAX_SEARCH_STEPS = 5_000, 200, 20, 100, 2


def _run(args, home: Path, cleanup, started: float, date) -> int:
    import http.client

    import numpy as np
    from common import example_project, progress, register_served_model

    from mlops.features import store as feature_store
    from mlops.platform.local import free_ports
    from mlops.platform.storage import ObjectStore
    from mlops.serving.local import LocalServing
    from mlops.serving.traffic_replay import known_ids, request_body

    work = home / "bench"
    work.mkdir()
    store = ObjectStore.from_env()
    project = example_project(PROJECT)
    if project.names.model != MODEL_NAME:
        raise RuntimeError(f"the {PROJECT} project's model is {project.names.model}, not {MODEL_NAME}")
    key = project.entity.key

    # -- 1. a model and its online features --------------------------------------------------
    progress(f"generating {ROWS:,} rows (seed {SEED}), build_features (Feast apply + materialize), train, register ...")
    version = register_served_model(work, store, DATA_URI, project, EXPERIMENT, ROWS, SEED).version
    progress(f"  {MODEL_NAME} v{version} registered ({time.monotonic() - started:.0f} s so far)")

    # customers the online store holds (the newest of the snapshot), each checked
    fs = feature_store.open_store(feature_store.FeatureStoreConfig.from_env(), project)
    candidates = known_ids(project, limit=2 * IDS)
    online = feature_store.online_features(fs, candidates)
    feature_cols = [c for c in online.columns if c != key]
    known = online.loc[online[feature_cols].notna().any(axis=1), key].tolist()
    if len(known) < 100:
        raise RuntimeError(f"only {len(known)} of {len(candidates)} recent customers have online features")
    rng = np.random.default_rng(SEED)
    ids = feature_store.online_ids(project, rng.permutation(np.array(known, dtype=object))[:IDS])
    bodies = {proto: [json.dumps(request_body(project, c, proto)) for c in ids] for proto in ("v1", "v2")}
    progress(f"  {len(ids)} customers with online features (of {len(candidates)} recent ones checked)")

    # -- 2. serve it as `mlops serve up` does ----------------------------------------------------
    serving = LocalServing(project, home=home)
    cleanup.callback(lambda: progress(f"serving stopped: {', '.join(serving.down()) or 'nothing'}"))
    port = free_ports(["transformer"])["transformer"]
    urls = serving.up(version, port=port, request_log=not args.no_request_log, progress=lambda m: progress(f"  {m}"))
    state = serving._load()  # the pids of the processes `up` started (LocalServing keeps them there)
    pids = {"transformer": state["transformer"].pid, "splitter": state["splitter"].pid,
            "predictor": state["predictors"][version].pid}
    url = urls["transformer"]
    import psutil

    children = {name: len(psutil.Process(pid).children(recursive=True)) for name, pid in pids.items()}
    if any(children.values()):  # VmRSS of the one process would then miss its workers' memory
        raise RuntimeError(f"a server runs child processes, which the RSS samples would miss: {children}")
    progress("  serving: " + ", ".join(f"{k} {u}" for k, u in urls.items()) + "; pids " +
             ", ".join(f"{k} {p}" for k, p in pids.items()))

    # one request of each protocol by hand, to fail early and clearly
    for path, body, marker in ((f"/v1/models/{MODEL_NAME}:predict", bodies["v1"][0], "predictions"),
                               (f"/v2/models/{MODEL_NAME}/infer", bodies["v2"][0], "outputs")):
        conn = http.client.HTTPConnection(LOOPBACK, port, timeout=30)
        try:
            conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            answer = resp.read()
        finally:
            conn.close()
        if resp.status != 200 or marker not in json.loads(answer):
            raise RuntimeError(f"POST {url}{path} answered {resp.status}: {answer[:300]!r}")
    progress(f"  V1 and V2 answer for {ids[0]}")

    # -- 3. the phases -----------------------------------------------------------------------------
    import shutil

    shutil.rmtree(PHASE_DIR, ignore_errors=True)  # one run's phase files at a time
    PHASE_DIR.mkdir(parents=True)
    bench = Bench(url, ids, bodies, PHASE_DIR, started)
    cleanup.callback(bench.stop_workers)
    load_before = os.getloadavg()
    progress(f"load average before: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}")
    progress(f"[unloaded] 1 user, one request at a time: {UNLOADED_WARMUP} warm-up + {UNLOADED_REQUESTS} requests")
    unloaded = bench.run("unloaded", rate=None, users=1, seconds=60.0, warmup_requests=UNLOADED_WARMUP,
                         requests=UNLOADED_REQUESTS)
    if unloaded["errors"]:
        raise RuntimeError(f"{unloaded['errors']} errors with one request at a time: {unloaded['error_kinds']}")
    p99_bound = P99_FACTOR * unloaded["latency_ms"]["p99"]
    capacity = 1000.0 / unloaded["latency_ms"]["mean"]
    progress(f"  unloaded p99 {unloaded['latency_ms']['p99']:.2f} ms: latency bound {p99_bound:.1f} ms; one-client "
             f"capacity {capacity:.0f} req/s")

    progress(f"[search] steps of {STEP_WARMUP_S:g} + {args.step_seconds:g} s, {LOADED_USERS} users on one schedule")
    max_rate, steps = search_max(bench, capacity, p99_bound, args.step_seconds)
    sustain_rate = max(1.0, math.floor(SUSTAIN_FRACTION * max_rate))
    progress(f"  maximum sustainable rate {max_rate:g} req/s; sustaining {sustain_rate:g} req/s")

    samples: list[tuple[float, dict[str, int | None]]] = []

    def sample(_proc) -> None:
        samples.append((time.time(), {name: rss_kib(pid) for name, pid in pids.items()}))

    progress(f"[sustained] {sustain_rate:g} req/s for {SUSTAIN_WARMUP_S:g} + {args.sustain_seconds:g} s, "
             f"RSS every {RSS_INTERVAL_S:g} s")
    sustained = bench.run("sustained", rate=sustain_rate, users=LOADED_USERS, warmup_s=SUSTAIN_WARMUP_S,
                          seconds=args.sustain_seconds, during=sample)
    sample(None)
    stalls = stall_episodes(bench.last_raw, SUSTAIN_WARMUP_S, args.sustain_seconds, p99_bound)
    load_after = os.getloadavg()
    progress(f"load average after: {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")

    # RSS from the first sample after the warm-up to the last one taken while the phase ran
    window = [(t, s) for t, s in samples
              if sustained["measure_start_epoch"] <= t <= sustained["measure_end_epoch"] + 2 * RSS_INTERVAL_S]
    if len(window) < 2:
        raise RuntimeError(f"only {len(window)} RSS samples in the sustained window")
    rss = {"samples": len(window), "interval_s": RSS_INTERVAL_S, "processes": {}}
    for name in SERVERS:
        series = [s[name] for _, s in window]
        if any(v is None for v in series):
            raise RuntimeError(f"the {name} (pid {pids[name]}) exited during the sustained phase")
        rss["processes"][name] = {"pid": pids[name], "start_kib": series[0], "end_kib": series[-1],
                                  "max_kib": max(series), "growth": (series[-1] - series[0]) / series[0],
                                  "series_kib": series}
    goals = {"errors": sustained["errors"] == 0,
             "p99": sustained["latency_ms"]["p99"] is not None and sustained["latency_ms"]["p99"] <= p99_bound,
             "rss": all(r["growth"] < RSS_GROWTH_MAX for r in rss["processes"].values())}
    res = {"date": date.strftime("%Y-%m-%d %H:%M UTC"), "versions": versions(), "model_version": version,
           "ids": len(ids), "ids_sample": ids[:5], "load_before": load_before, "load_after": load_after,
           "no_request_log": args.no_request_log, "sustain_seconds": args.sustain_seconds,
           "step_seconds": args.step_seconds,
           "unloaded": unloaded, "capacity": capacity, "p99_bound": p99_bound, "p99_goal":
               f"p99 at {SUSTAIN_FRACTION:.0%} of the maximum <= {P99_FACTOR:g} x unloaded p99 (no absolute bound in "
               "examples/credit-default/rollout.yaml)",
           "search": steps, "max_rate": max_rate, "sustained": {**sustained, "rate": sustain_rate, "stalls": stalls},
           "rss": rss, "goals": goals, "pids": pids, "total_requests": bench.total_requests,
           "run_seconds": time.monotonic() - started}
    print()
    print(report(res))
    print()
    OUT_JSON.parent.mkdir(parents=True, exist_ok=True)
    OUT_JSON.write_text(json.dumps(res, indent=2, default=str))
    progress(f"wrote {OUT_JSON.relative_to(ROOT) if OUT_JSON.is_relative_to(ROOT) else OUT_JSON}; "
             f"{bench.total_requests:,} requests in all, "
             f"{res['run_seconds']:.0f} s")
    return 1 if args.strict and not all(goals.values()) else 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--locust-worker"]:
        sys.exit(locust_worker(sys.argv[2], sys.argv[3]))
    try:
        sys.exit(main())
    except KeyboardInterrupt as stop:
        print(f"bench_load: {stop or 'interrupted'}; every process it started was stopped", file=sys.stderr)
        sys.exit(130)
