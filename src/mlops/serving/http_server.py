"""KServe's ModelServer, bound where we say, answering bad requests with 4xx instead of 500.

KServe 0.21's REST server always binds 0.0.0.0 and answers a missing
Content-Type, an oversized body and several malformed payloads with 500.
This module runs the same FastAPI app and dataplane with three additions: a
chosen bind address, a small ASGI guard in front (media type and body size,
checked before the body is parsed) and handlers that turn a
:class:`~mlops.errors.HttpError` into its status code with a message saying what to fix
(and FastAPI's and KServe's own refusals into the same ``{"error": ...}`` form).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import sys
import time
from collections.abc import Awaitable, Callable

from mlops.errors import BadRequest, HttpError

DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
SERVER_TIMING = "server-timing"
VERSION_HEADER = "x-mlops-model-version"  # which model version answered, on every answer
UNKNOWN_VERSION = "unknown"  # the version of an answer nobody could attribute (the predictor never answered)
_INFERENCE_SUFFIXES = (":predict", ":explain", "/infer")
_JSON_TYPES = ("application/json", "application/cloudevents+json")
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


class RequestGuard:
    """ASGI middleware: inference POSTs must be JSON and no bigger than ``max_body_bytes``."""

    def __init__(self, app, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
                 response_headers: dict[str, str] | None = None) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.extra = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (response_headers or {}).items()]

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].endswith(_INFERENCE_SUFFIXES):
            await self.app(scope, receive, self._with_headers(send) if self.extra and scope["type"] == "http" else send)
            return
        send = self._with_headers(send, time.perf_counter())
        headers = dict(scope["headers"])
        media = headers.get(b"content-type", b"").split(b";")[0].strip().decode("latin-1").lower()
        if media not in _JSON_TYPES:
            said = f"Content-Type {media!r}" if media else "no Content-Type"
            await _reply(send, 415, f"{said}: inference requests must be sent as application/json")
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
        if headers[b"content-type"] != media.encode():
            # KServe compares the whole header with "application/json": hand it the bare media type, or it
            # takes "application/json; charset=utf-8" (or "Application/JSON") for a binary body.
            scope = {**scope, "headers": [(k, media.encode() if k == b"content-type" else v)
                                          for k, v in scope["headers"]]}
        await self.app(scope, _capped(receive, self.max_body_bytes), send)

    def _with_headers(self, send, started: float | None = None):
        """Every answer, errors included, carries the extra headers (e.g. the model version), and an
        inference answer a standard ``Server-Timing`` header: the time spent in this server, which a
        caller can compare across servers without its own queueing in the number."""
        async def wrapped(message: dict) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                extra = [h for h in self.extra if h[0] not in names]
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


def _install(app, max_body_bytes: int, response_headers: dict[str, str] | None) -> None:
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

    app.add_middleware(RequestGuard, max_body_bytes=max_body_bytes, response_headers=response_headers)
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
          response_headers: dict[str, str] | None = None, on_stop: Callable[[], None] | None = None) -> None:
    """Serve ``models`` (loaded kserve.Model objects) over HTTP on ``host:port`` until SIGTERM/SIGINT."""
    import_kserve()
    from kserve.model_server import ModelServer
    from kserve.protocol.rest.server import RESTServer

    class _Rest(RESTServer):
        def create_application(self):
            super().create_application()
            from kserve.model_server import app

            _install(app, max_body_bytes, response_headers)

    server = ModelServer(http_port=port, enable_grpc=False, enable_latency_logging=False)
    _quiet_per_request_logs()
    for model in models:
        if not model.ready:
            raise RuntimeError(f"model {model.name} is not loaded")
        server.register_model(model)
    rest = _Rest("kserve.model_server:app", server.dataplane, server.model_repository_extension, port,
                 grace_period=3)
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
