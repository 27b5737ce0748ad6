"""`mlops traffic`: replay inference requests for known customers at a steady rate.

Requests go to the transformer (V1 or V2), one customer per request by
default, paced on a fixed schedule (a late request does not make the next
one early), from one keep-alive client. It stands in for live traffic so a
shadow or canary phase has something to judge; it reports status counts,
model versions answering, and latency percentiles.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from mlops.errors import ConfigError
from mlops.features.definitions import ENTITY_KEY


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


def customer_ids(limit: int = 5_000) -> list[str]:
    """Customers the online store can answer for: the newest ones of the applied feature snapshot.

    Materialization keeps a customer online only while its latest features
    are within the feature view's TTL, so older customers would get 422.
    """
    import pyarrow.parquet as pq

    from mlops.features import store as feature_store
    from mlops.features.definitions import DEFAULT_TTL, FEATURE_TIMESTAMP

    fs = feature_store.open_store(feature_store.FeatureStoreConfig.from_env())
    table = pq.read_table(feature_store.ensure_applied_snapshot(fs), columns=[ENTITY_KEY, FEATURE_TIMESTAMP])
    frame = table.to_pandas().sort_values(FEATURE_TIMESTAMP)
    recent = frame[frame[FEATURE_TIMESTAMP] > frame[FEATURE_TIMESTAMP].max() - DEFAULT_TTL / 2]
    return list(dict.fromkeys(recent[ENTITY_KEY].tolist()))[-limit:]


def replay(url: str, model_name: str, ids: list[str], *, rate: float, requests: int | None = None,
           duration_s: float | None = None, protocol: str = "v1", seed: int = 0,
           stop: threading.Event | None = None) -> ReplayStats:
    """Send requests to ``url`` (the transformer) at ``rate`` per second until a count, a duration or ``stop``."""
    import httpx

    if rate <= 0 or rate > 10_000:
        raise ConfigError(f"rate must be in (0, 10000] requests/s, got {rate}")
    if requests is None and duration_s is None and stop is None:
        raise ConfigError("give a number of requests, a duration or a stop event")
    if not ids:
        raise ConfigError("no customer ids to send")
    if protocol not in ("v1", "v2"):
        raise ConfigError(f"protocol must be v1 or v2, got {protocol!r}")
    rng = random.Random(seed)
    path = (f"/v1/models/{model_name}:predict" if protocol == "v1" else f"/v2/models/{model_name}/infer")
    stats, started = ReplayStats(), time.perf_counter()
    with httpx.Client(base_url=url.rstrip("/"), timeout=30.0) as client:
        while True:
            now = time.perf_counter() - started
            if ((requests is not None and stats.sent >= requests) or (duration_s is not None and now >= duration_s)
                    or (stop is not None and stop.is_set())):
                break
            due = stats.sent / rate
            if due > now:
                time.sleep(due - now)
            customer = rng.choice(ids)
            body = ({"instances": [{ENTITY_KEY: customer}]} if protocol == "v1" else
                    {"inputs": [{"name": ENTITY_KEY, "datatype": "BYTES", "shape": [1], "data": [customer]}]})
            t0 = time.perf_counter()
            try:
                resp = client.post(path, json=body)
                stats.statuses[resp.status_code] += 1
                if resp.status_code == 200:
                    stats.versions[str(resp.json().get("model_version"))] += 1
            except httpx.HTTPError as exc:
                stats.statuses[type(exc).__name__] += 1
            stats.latencies_ms.append((time.perf_counter() - t0) * 1000)
            stats.sent += 1
    stats.seconds = time.perf_counter() - started
    return stats
