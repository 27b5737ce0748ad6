"""KServe's ModelServer, bound where we say, answering what conformant clients send, refusing the rest with a 4xx.

KServe 0.21's REST server always binds 0.0.0.0, answers a missing
Content-Type, an oversized body and several malformed payloads with 500,
refuses tritonclient's defaults (JSON without a Content-Type, binary tensors),
answers any model version with 501 and lets any caller load and unload
models. This module runs the same FastAPI app and dataplane with these
changes: a chosen bind address; a small ASGI guard in front (media type,
binary framing, body size and model versions, checked before the body is
parsed); a strict decoder for binary tensors
(:mod:`mlops.serving.open_inference`); no model repository routes; and
handlers that turn a :class:`~mlops.errors.HttpError` into its status code
with a message saying what to fix (and FastAPI's and KServe's own refusals
into the same ``{"error": ...}`` form).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import re
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl, unquote, urlencode

from mlops.errors import BadRequest, HttpError

DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
SERVER_TIMING = "server-timing"
VERSION_HEADER = "x-mlops-model-version"  # which model version answered, on every answer
UNKNOWN_VERSION = "unknown"  # the version of an answer nobody could attribute (the predictor never answered)
_INFERENCE_SUFFIXES = (":predict", ":explain", "/infer")
_JSON_TYPES = ("application/json", "application/cloudevents+json")
_OCTET_STREAM = "application/octet-stream"
_CE_BINARY = (b"ce-specversion", b"ce-source", b"ce-type", b"ce-id")  # all four: KServe reads a binary CloudEvent


def import_kserve():
    """Import kserve without letting its import-time argparse read our command line."""
    if "kserve" in sys.modules:
        return sys.modules["kserve"]
    saved, sys.argv = sys.argv, sys.argv[:1]
    try:
        import kserve
    finally:
        sys.argv = saved
    return kserve


def upstream_client(timeout_s: float):
    """The keep-alive HTTP client a server uses to call the servers behind it."""
    import httpx

    return httpx.AsyncClient(timeout=timeout_s, limits=httpx.Limits(max_connections=256, max_keepalive_connections=64))


def _error_body(message: str) -> bytes:
    import orjson

    return orjson.dumps({"error": _printable(message)})


def _printable(message: str) -> str:
    """The message, with any unpaired surrogate escaped: a V2 body parsed by the json module may carry
    them (in a tensor name, say) into an error message, and JSON output must be UTF-8."""
    return message.encode("utf-8", "backslashreplace").decode("utf-8")


# Asked for a model version: the answer for the version served, a 404 naming it for any other.
VersionCheck = Callable[[str, str], "str | None"]  # (model, version asked) -> None to serve, or why not
_VERSIONED = re.compile(r"^(/v2/models/[^/]+)/versions/([^/]+)(/ready|/infer)?$")
# Routes that change what is served: KServe's model repository extension. Off on every server here;
# rollouts and reloads go through the rollout controller (mlops.rollout), never through a caller.
REPOSITORY_PREFIX = "/v2/repository"


class RequestGuard:
    """ASGI middleware: what an inference POST may be (JSON or V2 binary tensors, at most
    ``max_body_bytes``), and which model versions a request may name."""

    def __init__(self, app, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
                 response_headers: dict[str, str] | None = None, version_check: VersionCheck | None = None) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.extra = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (response_headers or {}).items()]
        self.version_check = version_check

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"].startswith(REPOSITORY_PREFIX):
            await _reply(self._with_headers(send), 404, "Not Found: the model repository extension is off on this "
                                                        "server; what it serves changes only through a rollout")
            return
        scope, refusal = self._unversioned(scope)
        inference = scope["method"] == "POST" and scope["path"].endswith(_INFERENCE_SUFFIXES)
        send = self._with_headers(send, time.perf_counter() if inference else None)
        if refusal is not None:
            await _reply(send, 404, refusal)
            return
        if not inference:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        media = headers.get(b"content-type", b"").split(b";")[0].strip().decode("latin-1").lower()
        binary = b"inference-header-content-length" in headers
        if binary and not scope["path"].endswith("/infer"):
            await _reply(send, 400, "the binary tensor data extension (Inference-Header-Content-Length) is for V2 "
                                    "/infer requests; send V1 requests as JSON")
            return
        if media not in (("", "application/json", _OCTET_STREAM) if binary else ("", *_JSON_TYPES)):
            await _reply(send, 415, f"Content-Type {media!r}: inference requests must be JSON (application/json, "
                                    "or no Content-Type), or V2 binary tensors with an Inference-Header-Content-"
                                    "Length header")
            return
        encoding = headers.get(b"content-encoding", b"identity").decode("latin-1").strip().lower()
        if encoding != "identity":  # a compressed body could unpack past the size limit: not accepted
            await _reply(send, 415, f"Content-Encoding {encoding!r}: request bodies must be sent uncompressed")
            return
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body_bytes):
            await _reply(send, 413, f"request body of {declared.decode('latin-1')} bytes is over the limit of "
                                    f"{self.max_body_bytes} bytes; split the batch")
            return
        if b"ce-contenttype" in headers and all(h in headers for h in _CE_BINARY):
            # KServe 0.21 unmarshals such an event's JSON data and then decodes it again as bytes: a 500.
            await _reply(send, 400, "a binary CloudEvent with a ce-contenttype header cannot be decoded; "
                                    "leave ce-contenttype out (the Content-Type header already says JSON)")
            return
        # What the app is handed: octet-stream for binary tensors (FastAPI would parse the body as JSON
        # and fail), else the bare JSON media type (KServe compares the whole header with
        # "application/json", and takes "application/json; charset=utf-8" or none at all for binary).
        inner = _OCTET_STREAM if binary else (media or "application/json")
        if headers.get(b"content-type") != inner.encode():
            scope = {**scope, "headers": [*((k, v) for k, v in scope["headers"] if k != b"content-type"),
                                          (b"content-type", inner.encode())]}
        await self.app(scope, _capped(receive, self.max_body_bytes), send)

    def _unversioned(self, scope: dict) -> tuple[dict, str | None]:
        """The scope with any model version taken out of its path and query, and why that version cannot
        be served (None when it can). KServe 0.21 answers every version with 501."""
        path, asked = scope["path"], None
        versioned = _VERSIONED.match(path) if path.startswith("/v2/models/") else None
        if versioned:
            path, asked = versioned.group(1) + (versioned.group(3) or ""), unquote(versioned.group(2))
        query = scope.get("query_string", b"")
        if b"model_version" in query and path.startswith("/v2/models/"):  # KServe's V2 handlers read it
            pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
            given = [v for k, v in pairs if k == "model_version"]
            if given:
                asked = asked if asked is not None else given[0]
                if any(v != asked for v in given):
                    return scope, f"the request names model versions {sorted({asked, *given})}: name one"
                query = urlencode([(k, v) for k, v in pairs if k != "model_version"]).encode("latin-1")
        if asked is None:
            return scope, None
        model = path.removeprefix("/v2/models/").split("/", 1)[0] if path.startswith("/v2/models/") else ""
        if self.version_check is None or not model:
            return scope, f"this server does not serve model versions (asked for version {asked!r})"
        refusal = self.version_check(model, asked)
        return {**scope, "path": path, "raw_path": path.encode("latin-1"), "query_string": query}, refusal

    def _with_headers(self, send, started: float | None = None):
        """Every answer, errors included, carries the extra headers (e.g. the model version), and an
        inference answer a standard ``Server-Timing`` header: the time spent in this server, which a
        caller can compare across servers without its own queueing in the number."""
        async def wrapped(message: dict) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                extra = [h for h in self.extra if h[0] not in names]
                if b"inference-header-content-length" in names and b"content-type" not in names:
                    extra.append((b"content-type", _OCTET_STREAM.encode()))  # a binary answer: say so
                if started is not None:
                    extra.append((b"server-timing", f"total;dur={(time.perf_counter() - started) * 1000:.3f}".encode()))
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        return wrapped


def _capped(receive: Callable[[], Awaitable[dict]], limit: int):
    """A receive() that refuses a chunked body once it grows past ``limit``."""
    seen = 0

    async def wrapped() -> dict:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BadRequest(f"request body is over the limit of {limit} bytes; split the batch", status=413)
        return message

    return wrapped


async def _reply(send, status: int, message: str) -> None:
    body = _error_body(message)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _install(app, max_body_bytes: int, response_headers: dict[str, str] | None,
             version_check: VersionCheck | None) -> None:
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import ORJSONResponse
    from kserve.errors import InvalidInput
    from starlette.exceptions import HTTPException

    async def http_error(_, exc: HttpError):
        return ORJSONResponse(status_code=exc.status, content={"error": _printable(str(exc))})

    async def invalid_input(_, exc: InvalidInput):
        # KServe's own refusals (FP16 data, a malformed CloudEvent, ...): its handler cannot write a message
        # that quotes an unpaired surrogate (a 500); this one can.
        return ORJSONResponse(status_code=400, content={"error": _printable(str(exc))})

    async def framework_error(_, exc: HTTPException):
        # FastAPI's own refusals (no such route, wrong method, a body it cannot decode) in the same
        # {"error": ...} form as ours; an undecodable body says why (not UTF-8, nested too deeply, ...).
        message = str(exc.detail)
        if exc.status_code == 400 and exc.__cause__ is not None:
            message = f"the request body is not valid JSON: {type(exc.__cause__).__name__}: {exc.__cause__}"[:500]
        return ORJSONResponse(status_code=exc.status_code, content={"error": _printable(message)},
                              headers=exc.headers)

    async def invalid_body(_, exc: RequestValidationError):
        problems = [f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body') or 'body'}: {e.get('msg')}"
                    for e in exc.errors()[:10]]
        return ORJSONResponse(status_code=422,
                              content={"error": _printable("malformed request body: " + "; ".join(problems))})

    # The repository routes are refused by the guard; the schema does not list them either.
    build_schema = app.openapi

    def openapi() -> dict:
        schema = build_schema()  # built once, then kept by FastAPI
        schema["paths"] = {p: v for p, v in schema.get("paths", {}).items() if not p.startswith(REPOSITORY_PREFIX)}
        return schema

    app.openapi = openapi
    app.add_middleware(RequestGuard, max_body_bytes=max_body_bytes, response_headers=response_headers,
                       version_check=version_check)
    app.add_exception_handler(HttpError, http_error)
    app.add_exception_handler(HTTPException, framework_error)
    app.add_exception_handler(InvalidInput, invalid_input)
    app.add_exception_handler(RequestValidationError, invalid_body)


def _quiet_per_request_logs() -> None:
    """Keep the access log; drop KServe's two timing lines and FastAPI's deprecation warning per request.

    Three extra lines per request cost CPU on the request path and drown the
    access log; the same timings are in /metrics.
    """
    import logging
    import warnings

    logging.getLogger("kserve.trace").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message="ORJSONResponse is deprecated")


def serve(models: list, host: str, port: int, *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
          response_headers: dict[str, str] | None = None, version_check: VersionCheck | None = None,
          on_stop: Callable[[], None] | None = None) -> None:
    """Serve ``models`` (loaded kserve.Model objects) over HTTP on ``host:port`` until SIGTERM/SIGINT.

    ``version_check`` says whether a request naming a model version may be served (see
    :data:`VersionCheck`); without one, every version is refused with a 404.
    """
    import_kserve()
    from kserve.model_server import ModelServer
    from kserve.protocol.dataplane import DataPlane
    from kserve.protocol.rest.server import RESTServer

    from mlops.serving.open_inference import HEADER_LENGTH, decode_binary_request

    class _StrictDataPlane(DataPlane):
        def decode_inference_request(self, body, headers, model_name):
            if isinstance(body, bytes):  # the binary tensor data extension (the guard let only those through)
                return decode_binary_request(body, headers.get(HEADER_LENGTH), model_name)
            return super().decode_inference_request(body, headers, model_name)

    class _Rest(RESTServer):
        def create_application(self):
            super().create_application()
            from kserve.model_server import app

            _install(app, max_body_bytes, response_headers, version_check)

    server = ModelServer(http_port=port, enable_grpc=False, enable_latency_logging=False)
    server.dataplane = _StrictDataPlane(model_registry=server.registered_models)
    _quiet_per_request_logs()
    for model in models:
        if not model.ready:
            raise RuntimeError(f"model {model.name} is not loaded")
        server.register_model(model)
    # No model repository extension: the guard refuses its load and unload routes.
    rest = _Rest("kserve.model_server:app", server.dataplane, None, port, grace_period=3)
    rest.config.host = host

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: setattr(rest._server, "should_exit", True))
        try:
            await rest.start()
        finally:
            if on_stop is not None:
                with contextlib.suppress(Exception):
                    on_stop()

    # What is loaded by now (kserve, feast, pandas, the model) lives as long as the process: take it out of
    # the collector's reach, or every full collection walks ~220k long-lived objects while requests wait
    # (bench/bench_load.py measured 160-430 ms stalls every ~15 s under load in the transformer).
    gc.collect()
    gc.freeze()
    asyncio.run(main())
