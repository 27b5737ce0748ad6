"""The KServe transformer: entity ids in, online features from Feast, prediction from the predictor.

Callers send entity ids, named by the project's join key (V1
``{"instances": [{"<key>": ...}]}``, or a V2 tensor ``<key>``: BYTES for a
string key, INT64 for an integer one). The transformer reads their current
features from the online store through the same feature service training
used (training-serving parity), asks the predictor (V1 on that hop), logs every row
(features, prediction, model version, request id) to S3 in batches, and, when
the routing document names a shadow, mirrors the request to it after
answering: the shadow's answer never reaches the caller and its failure never
fails the request; agreement and latency are metrics.

Metrics on ``/metrics`` (what the rollout analysis reads), per role
(``primary``/``shadow``) and model version: upstream requests by outcome,
upstream latency, rows, positive rows and score sums, and shadow agreement.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import threading
import time
import uuid
from urllib.parse import quote

import numpy as np
import orjson
import pandas as pd

from mlops.errors import BadRequest, UpstreamError
from mlops.project import Project
from mlops.serving import open_inference
from mlops.serving.http_server import SERVER_TIMING, UNKNOWN_VERSION, VERSION_HEADER, import_kserve, upstream_client
from mlops.serving.request_schema import _flatten, is_text
from mlops.serving.routing import Routing, ShadowTarget, read_routing

kserve = import_kserve()
from kserve.protocol.infer_type import InferRequest  # noqa: E402
from prometheus_client import Counter, Gauge, Histogram  # noqa: E402

logger = logging.getLogger("mlops.transformer")
logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per upstream call otherwise
REQUEST_ID_HEADER = "x-request-id"
LATENCY_BUCKETS = (0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.015,
                   0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UPSTREAM_REQUESTS = Counter("mlops_upstream_requests_total", "Predictor calls by role, version and outcome",
                            ["role", "model_version", "outcome"])
UPSTREAM_LATENCY = Histogram("mlops_upstream_latency_seconds", "Predictor call latency",
                             ["role", "model_version"], buckets=LATENCY_BUCKETS)
UPSTREAM_SERVER_LATENCY = Histogram("mlops_upstream_server_seconds",
                                    "Time the predictor reports spending on a call (its Server-Timing header)",
                                    ["role", "model_version"], buckets=LATENCY_BUCKETS)
UPSTREAM_ROWS = Counter("mlops_upstream_rows_total", "Rows scored", ["role", "model_version"])
UPSTREAM_POSITIVES = Counter("mlops_upstream_positive_rows_total", "Rows predicted positive", ["role", "model_version"])
UPSTREAM_SCORE_SUM = Counter("mlops_upstream_score_sum_total", "Sum of predicted probabilities",
                             ["role", "model_version"])
SHADOW_AGREEMENT = Counter("mlops_shadow_rows_total", "Shadow rows compared with production, by agreement",
                           ["model_version", "agree"])
SHADOW_SKIPPED = Counter("mlops_shadow_skipped_total", "Mirrors skipped because too many were in flight",
                         ["model_version"])
SHADOW_TARGET = Gauge("mlops_shadow_target_info", "The shadow currently mirrored to (value 1)", ["model_version", "url"])
FEATURE_LATENCY = Histogram("mlops_feature_lookup_seconds", "Online feature lookup latency", buckets=LATENCY_BUCKETS)


# Integer key tensors and the values each can hold (the Open Inference Protocol's ranges): an id that does
# not fit its declared type is refused, not read as whatever integer the JSON happened to carry.
_INTEGER_TENSORS = {"INT64": (-(2 ** 63), 2 ** 63 - 1), "INT32": (-(2 ** 31), 2 ** 31 - 1),
                    "UINT32": (0, 2 ** 32 - 1)}
_INT64 = _INTEGER_TENSORS["INT64"]


def entity_ids(payload, project: Project, max_rows: int = 10_000) -> list:
    """The entity ids of a V1 or V2 request, as the project's join key holds them; a clear 4xx for anything else."""
    key, integer = project.entity.key, project.entity.type == "integer"
    tensor_type = "INT64" if integer else "BYTES"
    example = 123 if integer else '"C000123"'
    if isinstance(payload, InferRequest):
        names = [i.name for i in payload.inputs]
        if names != [key]:  # a second key tensor too: which one would be meant?
            raise BadRequest(f"a V2 request to the transformer needs exactly one input, {key!r} "
                             f"({tensor_type}, shape [n]); got {sorted(names) or 'none'}")
        tensor = payload.inputs[0]
        if tensor.datatype not in ((*_INTEGER_TENSORS,) if integer else ("BYTES",)):
            raise BadRequest(f"input {key!r} must be a {tensor_type} tensor of shape [n], got {tensor.datatype}")
        data = _flatten(tensor.data)  # [n] or [n, 1], nested or not, as the predictor reads tensors
        if data is None or list(tensor.shape) not in ([len(data)], [len(data), 1]):
            carried = "nested data of another form" if data is None else f"{len(data)} values"
            raise BadRequest(f"input {key!r} declares shape {list(tensor.shape)} but carries {carried}")
        ids = [v.decode() if isinstance(v, bytes) else v for v in data]
        if integer:
            low, high = _INTEGER_TENSORS[tensor.datatype]
            bad = [i for i, v in enumerate(ids) if isinstance(v, int) and not isinstance(v, bool)
                   and not low <= v <= high]
            if bad:
                raise BadRequest(f"input {key!r} is {tensor.datatype} but rows {bad[:10]} hold values outside "
                                 f"[{low}, {high}]")
    else:
        if not isinstance(payload, dict) or not isinstance(payload.get("instances"), list) or not payload["instances"]:
            raise BadRequest(f"a V1 request needs \"instances\": a non-empty list of objects like "
                             f"{{\"{key}\": {example}}}")
        ids = []
        for i, row in enumerate(payload["instances"]):
            if not isinstance(row, dict) or set(row) != {key}:
                raise BadRequest(f"instance {i} must be an object with exactly the field {key!r}; "
                                 "features come from the feature store, not from the caller")
            ids.append(row[key])
    if not ids:
        raise BadRequest(f"empty request: no {key} given")
    if len(ids) > max_rows:
        raise BadRequest(f"{len(ids)} {key} values in one request; at most {max_rows} are accepted", status=413)
    if integer:
        bad = [i for i, v in enumerate(ids) if isinstance(v, bool) or not isinstance(v, int)
               or not _INT64[0] <= v <= _INT64[1]]
        if bad:
            raise BadRequest(f"{key} must be a whole number (a 64-bit integer id) (rows {bad[:10]})")
        return ids
    bad = [i for i, v in enumerate(ids) if not isinstance(v, str) or not v.strip()]
    if bad:
        raise BadRequest(f"{key} must be a non-empty string (rows {bad[:10]})")
    bad = [i for i, v in enumerate(ids) if not is_text(v)]
    if bad:  # the feature store cannot look such an id up
        raise BadRequest(f"{key} must be valid Unicode text (rows {bad[:10]} hold unpaired surrogates)")
    return ids


def predictor_body(features: pd.DataFrame, project: Project) -> bytes:
    """The predictor's request: V1 instances, one object of feature values per row, nulls for missing.

    V1 rather than V2 on this hop: KServe decodes a V2 body through pydantic
    models, which costs the predictor more than the model's own scoring of a
    row. Built from the columns' NumPy arrays directly; this runs on every
    request, and pandas' per-column conversions cost more than the hop.
    """
    columns = {}
    for name, kind in project.features.columns:
        values = features[name].to_numpy().tolist()
        columns[name] = ([None if v is None or v != v else v for v in values] if kind == "string"
                         else [None if v != v else v for v in values])  # NaN -> null
    rows = [dict(zip(columns, row)) for row in zip(*columns.values())]
    return orjson.dumps({"instances": rows})


def parse_answer(content: bytes) -> tuple[np.ndarray, np.ndarray, str | None]:
    """Probabilities, classes and the model version of a predictor's V1 answer."""
    body = orjson.loads(content)
    predictions = body["predictions"]
    return (np.fromiter((p["probability"] for p in predictions), dtype=np.float64, count=len(predictions)),
            np.fromiter((p["class"] for p in predictions), dtype=np.int64, count=len(predictions)),
            body.get("model_version"))


class FeatureTransformer(kserve.Model):
    """Feature lookup, prediction forwarding, request logging and shadow mirroring for one project's model.

    ``feature_store`` is the project's :class:`~mlops.features.store.ProjectStore`: it knows the entity key,
    the feature list and the service to read.
    """

    def __init__(self, name: str, predictor_url: str, feature_store, request_log=None, *, routing_store=None,
                 routing_poll_s: float = 2.0, timeout_s: float = 10.0, shadow_timeout_s: float = 5.0,
                 max_shadow_inflight: int = 64, max_rows: int = 10_000):
        super().__init__(name, return_response_headers=True)
        self.predictor_url = predictor_url.rstrip("/")
        self.fs, self.log = feature_store, request_log
        self.project: Project = feature_store.project
        self.timeout_s, self.shadow_timeout_s, self.max_shadow_inflight = timeout_s, shadow_timeout_s, max_shadow_inflight
        self.max_rows = max_rows
        self.last_version: str | None = None
        self.routing = Routing()
        self._client = None
        self._shadow_inflight = 0
        self._last_shadow_note = -1e9
        self._tasks: set[asyncio.Task] = set()
        self._stop = threading.Event()
        if routing_store is not None:
            self._apply_routing(read_routing(routing_store, name))
            threading.Thread(target=self._poll_routing, args=(routing_store, routing_poll_s), daemon=True,
                             name="routing-poll").start()
        self.ready = True

    # -- routing -----------------------------------------------------------------------
    def _apply_routing(self, routing: Routing) -> None:
        if routing == self.routing:
            return
        if self.routing.shadow:
            SHADOW_TARGET.labels(self.routing.shadow.model_version, self.routing.shadow.url).set(0)
        if routing.shadow:
            SHADOW_TARGET.labels(routing.shadow.model_version, routing.shadow.url).set(1)
        self.routing = routing

    def _poll_routing(self, store, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            try:
                self._apply_routing(read_routing(store, self.name))
            except Exception as exc:  # noqa: BLE001 - keep serving with the last known routing
                logger.warning("routing poll failed, keeping the current routing: %s", exc)

    def stop(self) -> None:
        self._stop.set()
        if self.log is not None:
            self.log.close()
        super().stop()

    # -- serving -----------------------------------------------------------------------
    @property
    def client(self):
        if self._client is None:  # created lazily, inside the server's event loop
            self._client = upstream_client(self.timeout_s)
        return self._client

    def lookup(self, ids: list) -> pd.DataFrame:
        from mlops.features.store import online_features

        started = time.perf_counter()
        features = online_features(self.fs, ids)
        FEATURE_LATENCY.observe(time.perf_counter() - started)
        unknown = [i for i, row_known in zip(ids, _known_rows(features, self.project)) if not row_known]
        if unknown:
            entity = self.project.entity
            raise BadRequest(f"no online features for {entity.key} {', '.join(map(str, unknown[:10]))}"
                             f"{' and more' if len(unknown) > 10 else ''}: unknown {entity.name}, or the feature "
                             "store was not materialized", status=422)
        return features

    async def predict(self, payload, headers=None, response_headers=None):
        headers = headers or {}
        v2 = isinstance(payload, InferRequest)
        # What the answer must repeat and hold, checked before any work. The caller's V2 id is the
        # request's id everywhere (answer, log, the predictor hop); else the gateway's x-request-id.
        caller_id = open_inference.request_id(payload) if v2 else None
        if v2:
            open_inference.requested(payload, open_inference.CLASSIFIER_OUTPUTS)
        request_id = caller_id or headers.get(REQUEST_ID_HEADER) or str(uuid.uuid4())
        ids = entity_ids(payload, self.project, self.max_rows)
        features = self.lookup(ids)
        body = predictor_body(features, self.project)
        probability, classes, version = await self._primary(body, request_id)
        self.last_version = version
        if response_headers is not None:  # which version answered, as the predictor says it
            response_headers.update({VERSION_HEADER: version, REQUEST_ID_HEADER: _header_safe(request_id)})
        if self.log is not None:
            self.log.append(request_id, version, features, probability, classes)
        shadow = self.routing.shadow
        if shadow is not None:
            self._start_mirror(shadow, body, request_id, probability, classes)
        if v2:
            return open_inference.answer(payload, self.name, version,
                                         {"probability": probability, "class": classes},
                                         response_id=request_id)
        key = self.project.entity.key
        return {"predictions": [{key: c, "probability": p, "class": k}
                                for c, p, k in zip(ids, probability.tolist(), classes.tolist())],
                "model_name": self.name, "model_version": version, "request_id": request_id}

    async def _primary(self, body: bytes, request_id: str) -> tuple[np.ndarray, np.ndarray, str]:
        import httpx

        url = f"{self.predictor_url}/v1/models/{self.name}:predict"
        started = time.perf_counter()
        try:
            resp = await self.client.post(url, content=body, headers={"content-type": "application/json",
                                                                      REQUEST_ID_HEADER: _header_safe(request_id)})
        except httpx.HTTPError as exc:
            UPSTREAM_REQUESTS.labels("primary", UNKNOWN_VERSION, "error").inc()
            raise UpstreamError(f"the predictor at {self.predictor_url} did not answer: {type(exc).__name__}",
                                status=504 if isinstance(exc, httpx.TimeoutException) else 502) from None
        elapsed = time.perf_counter() - started
        version = resp.headers.get(VERSION_HEADER, UNKNOWN_VERSION)
        if resp.status_code != 200:
            UPSTREAM_REQUESTS.labels("primary", version, "error").inc()
            message = _error_message(resp)
            if 400 <= resp.status_code < 500:  # our features were refused: a bug or a schema mismatch, say so
                raise UpstreamError(f"the predictor (v{version}) refused the features: {message}", status=502)
            raise UpstreamError(f"the predictor (v{version}) failed with {resp.status_code}: {message}", status=502)
        probability, classes, body_version = parse_answer(resp.content)
        version = body_version or version
        _record("primary", version, elapsed, probability, classes, resp.headers)
        return probability, classes, version

    def version_check(self, model_name: str, version: str) -> str | None:
        """No version can be pinned here: the transformer serves the model by its production alias, and
        which version answers (stable or canary, during a rollout) is the predictor side's to decide."""
        now = f" (last answered by version {self.last_version})" if self.last_version else ""
        return (f"model {model_name} version {version} cannot be asked for here: the transformer serves "
                f"{model_name} by its production alias{now}, and each answer's model_version says which version "
                "answered; send the request without a version")

    # -- shadow ------------------------------------------------------------------------
    def _start_mirror(self, shadow: ShadowTarget, body: bytes, request_id: str, probability: np.ndarray,
                      classes: np.ndarray) -> None:
        if self._shadow_inflight >= self.max_shadow_inflight:
            SHADOW_SKIPPED.labels(shadow.model_version).inc()
            return
        self._shadow_inflight += 1
        task = asyncio.get_running_loop().create_task(self._mirror(shadow, body, request_id, probability, classes))
        self._tasks.add(task)
        task.add_done_callback(self._mirror_done)

    def _note_shadow_failure(self, shadow: ShadowTarget, exc: Exception) -> None:
        """One log line per 10 s at most: enough to see why, never a flood."""
        now = time.monotonic()
        if now - self._last_shadow_note >= 10:
            self._last_shadow_note = now
            logger.warning("shadow v%s at %s failed (counted, caller unaffected): %s: %s", shadow.model_version,
                           shadow.url, type(exc).__name__, exc)

    def _mirror_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        self._shadow_inflight -= 1

    async def _mirror(self, shadow: ShadowTarget, body: bytes, request_id: str, probability: np.ndarray,
                      classes: np.ndarray) -> None:
        """Send the same features to the shadow; compare; never raise."""
        started = time.perf_counter()
        try:
            resp = await self.client.post(f"{shadow.url.rstrip('/')}/v1/models/{self.name}:predict", content=body,
                                          headers={"content-type": "application/json", REQUEST_ID_HEADER: request_id},
                                          timeout=self.shadow_timeout_s)
            if resp.status_code != 200:
                raise UpstreamError(f"status {resp.status_code}")
            shadow_probability, shadow_classes, _ = parse_answer(resp.content)
            if len(shadow_classes) != len(classes):
                raise UpstreamError("row count differs")
        except Exception as exc:  # noqa: BLE001 - a shadow failure is a metric and a log line, never the caller's
            UPSTREAM_REQUESTS.labels("shadow", shadow.model_version, "error").inc()
            self._note_shadow_failure(shadow, exc)
            return
        _record("shadow", shadow.model_version, time.perf_counter() - started, shadow_probability, shadow_classes,
                resp.headers)
        agree = int((shadow_classes == classes).sum())
        SHADOW_AGREEMENT.labels(shadow.model_version, "yes").inc(agree)
        SHADOW_AGREEMENT.labels(shadow.model_version, "no").inc(len(classes) - agree)


def _header_safe(request_id: str) -> str:
    """The id as an HTTP header value: a caller's V2 id may hold any text, a header only visible ASCII."""
    return request_id if request_id.isascii() and request_id.isprintable() else quote(request_id, safe="")


def _known_rows(features: pd.DataFrame, project: Project) -> np.ndarray:
    """Rows with at least one feature value: the store knows the entity."""
    known = np.zeros(len(features), dtype=bool)
    for name in project.features.names:
        values = features[name].to_numpy()
        known |= ~np.isnan(values) if values.dtype.kind == "f" else np.fromiter(
            (v is not None for v in values), dtype=bool, count=len(values))
    return known


def _record(role: str, version: str, elapsed: float, probability: np.ndarray, classes: np.ndarray,
            headers) -> None:
    UPSTREAM_REQUESTS.labels(role, version, "ok").inc()
    UPSTREAM_LATENCY.labels(role, version).observe(elapsed)
    server_ms = _server_ms(headers.get(SERVER_TIMING, ""))
    if server_ms is not None:
        UPSTREAM_SERVER_LATENCY.labels(role, version).observe(server_ms / 1000)
    UPSTREAM_ROWS.labels(role, version).inc(len(classes))
    UPSTREAM_POSITIVES.labels(role, version).inc(int(classes.sum()))
    UPSTREAM_SCORE_SUM.labels(role, version).inc(float(probability.sum()))


def _server_ms(header: str) -> float | None:
    """The ``dur`` of a ``Server-Timing: total;dur=1.234`` header."""
    for part in header.split(";"):
        if part.strip().startswith("dur="):
            try:
                return float(part.strip()[4:])
            except ValueError:
                return None
    return None


def _error_message(resp) -> str:
    try:
        return str(orjson.loads(resp.content).get("error", resp.text))[:500]
    except (orjson.JSONDecodeError, AttributeError):
        return resp.text[:500]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mlops-transformer", description=__doc__.splitlines()[0])
    # KServe starts a transformer with --model_name, --predictor_host and --http_port: accepted as aliases.
    p.add_argument("--project", default=os.environ.get("MLOPS_PROJECT"),
                   help="the project served: an example's name, a folder or a pushed s3:// archive (MLOPS_PROJECT)")
    p.add_argument("--model-name", "--model_name", help="default: the project's model name")
    p.add_argument("--predictor-url", default=os.environ.get("MLOPS_PREDICTOR_URL"),
                   help="base URL of the predictor (in KServe: http://<isvc>-predictor.<namespace>)")
    p.add_argument("--predictor_host", help="host[:port] of the predictor, as KServe passes it")
    p.add_argument("--host", default=os.environ.get("MLOPS_SERVING_HOST", "0.0.0.0"))
    p.add_argument("--http-port", "--http_port", type=int, default=int(os.environ.get("PORT", "8080")))
    p.add_argument("--no-request-log", action="store_true", help="do not log served rows to S3")
    p.add_argument("--routing-poll-s", type=float, default=2.0)
    p.add_argument("--max-rows", type=int, default=10_000, help="most entity ids per request")
    return p


def main(argv: list[str] | None = None) -> None:
    from mlops.errors import ConfigError, exit_on_user_error
    from mlops.features import store as feature_store
    from mlops.platform.storage import ObjectStore
    from mlops.project import resolve_project
    from mlops.serving.http_server import serve
    from mlops.serving.request_log import RequestLog

    args, unknown = parser().parse_known_args(argv)
    if unknown:
        logger.warning("ignoring arguments meant for stock KServe servers: %s", " ".join(unknown))
    if args.predictor_host and not args.predictor_url:
        args.predictor_url = args.predictor_host if "://" in args.predictor_host else f"http://{args.predictor_host}"
    with exit_on_user_error("transformer"):
        if not args.predictor_url:
            raise ConfigError("--predictor-url (or MLOPS_PREDICTOR_URL) is required")
        if not args.project:
            raise ConfigError("--project (or MLOPS_PROJECT) is required: the project whose model is served")
        store = ObjectStore.from_env()
        store.check()
        project = resolve_project(args.project, store=store)
        args.model_name = args.model_name or project.names.model
        fs = feature_store.open_store(feature_store.FeatureStoreConfig.from_env(), project)
        feature_store.ensure_applied_snapshot(fs, store)
        feature_store.check_online_store(fs)
        log = None if args.no_request_log else RequestLog(store, args.model_name)
        model = FeatureTransformer(args.model_name, args.predictor_url, fs, log, routing_store=store,
                                   routing_poll_s=args.routing_poll_s, max_rows=args.max_rows)
    serve([model], args.host, args.http_port, version_check=model.version_check, on_stop=model.stop)


if __name__ == "__main__":
    main()
