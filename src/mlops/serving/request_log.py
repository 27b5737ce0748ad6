"""The inference log: every served row's features, prediction and model version, batched to S3.

The request path only appends to an in-memory buffer (microseconds); a
background thread writes the buffer as one Parquet object per flush under
``inference-log/<model>/date=<YYYY-MM-DD>/``. An S3 PUT is atomic, so a
reader (monitoring, the skew check) never sees a partial file. When S3 is
down the rows wait and the flush is retried; only beyond ``max_pending_rows``
are the oldest dropped, and every drop is counted in a metric.
"""

from __future__ import annotations

import io
import os
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import pandas as pd
from prometheus_client import Counter, Gauge

from mlops.platform.storage import ObjectStore, join_key

LOG_PREFIX = "inference-log"
LOGGED_ROWS = Counter("mlops_request_log_rows_total", "Inference rows handed to the request log, by fate",
                      ["model_name", "fate"])
PENDING_ROWS = Gauge("mlops_request_log_pending_rows", "Rows waiting to be written to S3", ["model_name"])


def log_prefix(model_name: str) -> str:
    return join_key(LOG_PREFIX, model_name)


@dataclass
class _Batch:
    request_id: str
    at: datetime
    model_version: str
    features: pd.DataFrame  # the entity key and feature columns, one row per served row
    probability: np.ndarray
    predicted_class: np.ndarray


class RequestLog:
    """Buffered, batched writer of served rows to S3."""

    def __init__(self, store: ObjectStore, model_name: str, *, flush_rows: int = 5_000, flush_interval_s: float = 2.0,
                 max_pending_rows: int = 500_000) -> None:
        self.store, self.model_name = store, model_name
        self.flush_rows, self.flush_interval_s, self.max_pending_rows = flush_rows, flush_interval_s, max_pending_rows
        self._pending: deque[_Batch] = deque()
        self._pending_rows = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._seq = 0
        self._writer_id = f"{socket.gethostname()}-{os.getpid()}"
        self._written, self._dropped = LOGGED_ROWS.labels(model_name, "written"), LOGGED_ROWS.labels(model_name, "dropped")
        self._gauge = PENDING_ROWS.labels(model_name)
        self.last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name="request-log", daemon=True)
        self._thread.start()

    def append(self, request_id: str, model_version: str, features: pd.DataFrame, probability: np.ndarray,
               predicted_class: np.ndarray) -> None:
        """Queue one request's rows; never blocks on S3."""
        batch = _Batch(request_id, datetime.now(timezone.utc), model_version, features, probability, predicted_class)
        with self._lock:
            self._pending.append(batch)
            self._pending_rows += len(features)
            while self._pending_rows > self.max_pending_rows and len(self._pending) > 1:
                dropped = self._pending.popleft()
                self._pending_rows -= len(dropped.features)
                self._dropped.inc(len(dropped.features))
            if self._pending_rows >= self.flush_rows:
                self._wake.set()
        self._gauge.set(self._pending_rows)

    def flush(self) -> int:
        """Write everything pending as one object; returns the rows written (0 if S3 refused: kept for later)."""
        with self._lock:
            batches = list(self._pending)
        if not batches:
            return 0
        rows = sum(len(b.features) for b in batches)
        try:
            self.store.put_bytes(_to_parquet(self.model_name, batches), self._next_key(batches[0].at))
        except Exception as exc:  # noqa: BLE001 - any failure keeps the rows for the next attempt
            self.last_error = str(exc)
            return 0
        with self._lock:
            for _ in batches:  # only the written ones; appends during the PUT stay queued
                self._pending.popleft()
            self._pending_rows -= rows
        self._gauge.set(self._pending_rows)
        self._written.inc(rows)
        self.last_error = None
        return rows

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop the writer after a last flush (server shutdown)."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout_s)
        self.flush()

    def _next_key(self, at: datetime) -> str:
        self._seq += 1
        name = f"{at.strftime('%Y%m%dT%H%M%S.%fZ')}-{self._writer_id}-{self._seq:06d}.parquet"
        return join_key(log_prefix(self.model_name), f"date={at:%Y-%m-%d}", name)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            if self.flush() == 0 and self.last_error:
                time.sleep(min(self.flush_interval_s, 1.0))  # S3 trouble: do not spin


def _to_parquet(model_name: str, batches: list[_Batch]) -> bytes:
    """One table for all pending requests, built column-wise (one concat, no per-request frames)."""
    counts = np.array([len(b.features) for b in batches])
    frame = pd.concat([b.features for b in batches], ignore_index=True)
    frame.insert(0, "request_id", np.repeat(np.array([b.request_id for b in batches], dtype=object), counts))
    frame.insert(1, "row", np.concatenate([np.arange(n, dtype=np.int32) for n in counts]))
    frame.insert(2, "logged_at", pd.to_datetime(np.repeat([b.at.timestamp() for b in batches], counts), unit="s",
                                                utc=True))
    frame["model_name"] = model_name
    frame["model_version"] = np.repeat(np.array([b.model_version for b in batches], dtype=object), counts)
    frame["probability"] = np.concatenate([b.probability for b in batches])
    frame["predicted_class"] = np.concatenate([b.predicted_class for b in batches])
    out = io.BytesIO()
    frame.to_parquet(out, index=False)
    return out.getvalue()


def _read(store: ObjectStore, keys: list[str]) -> pd.DataFrame:
    if not keys:
        return pd.DataFrame()
    frame = pd.concat([pd.read_parquet(io.BytesIO(store.get_bytes(k))) for k in keys], ignore_index=True)
    return frame.sort_values(["logged_at", "request_id", "row"], kind="stable", ignore_index=True)


def read_log(store: ObjectStore, model_name: str, date: str | None = None) -> pd.DataFrame:
    """All logged rows of a model (optionally one UTC day), oldest first."""
    prefix = log_prefix(model_name) + (f"/date={date}/" if date else "/")
    return _read(store, sorted(k for k in store.list_keys(prefix) if k.endswith(".parquet")))


def read_window(store: ObjectStore, model_name: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Logged rows with ``start <= logged_at < end`` (UTC), reading only the days the window touches."""
    first, last = start.strftime("%Y-%m-%d"), end.strftime("%Y-%m-%d")
    frame = _read(store, sorted(k for k in store.list_keys(log_prefix(model_name) + "/") if k.endswith(".parquet")
                                and first <= k.rpartition("/date=")[2][:10] <= last))
    if frame.empty:
        return frame
    return frame[(frame["logged_at"] >= start) & (frame["logged_at"] < end)].reset_index(drop=True)
