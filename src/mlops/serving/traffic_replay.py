"""`mlops traffic`: replay inference requests for known entities at a steady rate.

Requests go to the transformer (V1 or V2), one entity per request,
paced on a fixed schedule shared by a few keep-alive clients (a slow answer
does not lower the offered rate). It stands in for live traffic so a
shadow or canary phase has something to judge; it reports status counts,
model versions answering, and latency percentiles.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from mlops.errors import ConfigError


@dataclass
class ReplayStats:
    sent: int = 0
    statuses: Counter = field(default_factory=Counter)
    versions: Counter = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        lat = np.asarray(self.latencies_ms) if self.latencies_ms else np.asarray([np.nan])
        versions = ", ".join(f"v{v}: {n}" for v, n in sorted(self.versions.items()))
        statuses = ", ".join(f"{s}: {n}" for s, n in sorted(self.statuses.items()))
        return (f"{self.sent} requests in {self.seconds:.1f} s ({self.sent / max(self.seconds, 1e-9):.1f}/s); "
                f"status {statuses}; answered by {versions or 'none'}; "
                f"latency p50 {np.nanpercentile(lat, 50):.2f} ms, p99 {np.nanpercentile(lat, 99):.2f} ms")


def known_ids(project, limit: int = 5_000) -> list:
    """Entities the online store can answer for: the newest ones of the project's applied feature snapshot.

    Materialization keeps an entity online only while its latest features
    are within the feature view's TTL, so older ones would get 422.
    """
    import pyarrow.parquet as pq

    from mlops.features import store as feature_store
    from mlops.features.definitions import FEATURE_TIMESTAMP

    fs = feature_store.open_store(feature_store.FeatureStoreConfig.from_env(), project)
    key = project.entity.key
    table = pq.read_table(feature_store.ensure_applied_snapshot(fs), columns=[key, FEATURE_TIMESTAMP])
    frame = table.to_pandas().sort_values(FEATURE_TIMESTAMP)
    recent = frame[frame[FEATURE_TIMESTAMP] > frame[FEATURE_TIMESTAMP].max() - fs.definitions.ttl / 2]
    return list(dict.fromkeys(recent[key].tolist()))[-limit:]


def request_body(project, entity_id, protocol: str) -> dict:
    """One entity's request to the transformer, V1 or V2 (a BYTES or INT64 tensor named by the join key)."""
    key = project.entity.key
    if protocol == "v1":
        return {"instances": [{key: entity_id}]}
    datatype = "INT64" if project.entity.type == "integer" else "BYTES"
    return {"inputs": [{"name": key, "datatype": datatype, "shape": [1], "data": [entity_id]}]}


def replay(url: str, project, ids: list, *, rate: float, requests: int | None = None,
           duration_s: float | None = None, protocol: str = "v1", seed: int = 0,
           stop: threading.Event | None = None, concurrency: int = 4,
           headers: dict[str, str] | None = None) -> ReplayStats:
    """Send requests to ``url`` (the transformer) at ``rate`` per second until a count, a duration or ``stop``.

    The model is the project's (``project.names.model``). ``headers`` go with
    every request: through an ingress gateway, ``Host``
    names the InferenceService.

    ``concurrency`` clients share the schedule, so a slow answer delays only
    its own client and the offered rate holds.
    """
    if rate <= 0 or rate > 10_000:
        raise ConfigError(f"rate must be in (0, 10000] requests/s, got {rate}")
    if requests is None and duration_s is None and stop is None:
        raise ConfigError("give a number of requests, a duration or a stop event")
    if not ids:
        raise ConfigError("no entity ids to send")
    if protocol not in ("v1", "v2"):
        raise ConfigError(f"protocol must be v1 or v2, got {protocol!r}")
    if not 1 <= concurrency <= 64:
        raise ConfigError(f"concurrency must be in [1, 64], got {concurrency}")
    stats, lock, started = ReplayStats(), threading.Lock(), time.perf_counter()
    issued = [0]  # the next slot on the shared schedule

    def next_slot() -> int | None:
        with lock:
            now = time.perf_counter() - started
            if ((requests is not None and issued[0] >= requests) or (duration_s is not None and now >= duration_s)
                    or (stop is not None and stop.is_set())):
                return None
            issued[0] += 1
            return issued[0] - 1

    def client_loop(worker: int) -> None:
        import httpx

        logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request otherwise
        rng = random.Random(seed * 1000 + worker)
        name = project.names.model
        path = f"/v1/models/{name}:predict" if protocol == "v1" else f"/v2/models/{name}/infer"
        with httpx.Client(base_url=url.rstrip("/"), timeout=30.0, headers=headers) as client:
            while (slot := next_slot()) is not None:
                delay = slot / rate - (time.perf_counter() - started)
                if delay > 0:
                    time.sleep(delay)
                body = request_body(project, rng.choice(ids), protocol)
                t0 = time.perf_counter()
                version, status = None, None
                try:
                    resp = client.post(path, json=body)
                    status = resp.status_code
                    if status == 200:
                        version = str(resp.json().get("model_version"))
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                elapsed = (time.perf_counter() - t0) * 1000
                with lock:
                    stats.statuses[status] += 1
                    if version is not None:
                        stats.versions[version] += 1
                    stats.latencies_ms.append(elapsed)
                    stats.sent += 1

    workers = [threading.Thread(target=client_loop, args=(i,), daemon=True) for i in range(concurrency)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    stats.seconds = time.perf_counter() - started
    return stats
