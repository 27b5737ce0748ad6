"""A weighted traffic splitter: the local stand-in for the cluster's ingress in front of predictor revisions.

In a cluster, KServe (through Knative) splits a predictor's traffic between
the stable and the canary revision by ``canaryTrafficPercent``. Locally this
small proxy does the same between predictor processes, with the weights set
through ``PUT /splitter/routes`` by the rollout controller. The split is a
smooth weighted round robin, so 5% is exactly 1 request in 20, not a coin
flip. Like a service mesh, it can inject faults into one route (a delay, a
share of 503s) to rehearse a bad rollout. Every answer carries the version
of the route that served it (``x-mlops-model-version``), errors included.
"""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import asdict, dataclass, field
from urllib.parse import urlparse

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, generate_latest

from mlops.errors import ConfigError
from mlops.serving.http_server import VERSION_HEADER, upstream_client

ADMIN_PREFIX = "/splitter/"
_HOP_HEADERS = {b"host", b"content-length", b"connection", b"transfer-encoding", b"keep-alive"}
ROUTED = Counter("mlops_splitter_requests_total", "Requests routed, by model version and status",
                 ["model_version", "status"])
WEIGHT = Gauge("mlops_splitter_weight_percent", "Current traffic weight per model version", ["model_version"])


@dataclass
class Fault:
    delay_ms: float = 0.0
    error_percent: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.delay_ms <= 60_000 or not 0 <= self.error_percent <= 100:
            raise ConfigError(f"fault needs 0 <= delay_ms <= 60000 and 0 <= error_percent <= 100, got {self}")


@dataclass
class Route:
    version: str
    url: str
    weight: int
    fault: Fault = field(default_factory=Fault)
    _current: float = field(default=0.0, repr=False)
    _served: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        parsed = urlparse(self.url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ConfigError(f"route {self.version}: url {self.url!r} must be http(s)://host:port")
        if not isinstance(self.weight, int) or not 0 <= self.weight <= 100:
            raise ConfigError(f"route {self.version}: weight must be an integer percent, got {self.weight!r}")
        if isinstance(self.fault, dict):
            self.fault = Fault(**self.fault)

    def public(self) -> dict:
        return {"version": self.version, "url": self.url, "weight": self.weight, "fault": asdict(self.fault)}


def parse_routes(raw: object) -> list[Route]:
    """Routes from ``{"routes": [{"version", "url", "weight", "fault"?}, ...]}``; weights must sum to 100."""
    if not isinstance(raw, dict) or not isinstance(raw.get("routes"), list) or not raw["routes"]:
        raise ConfigError('routes must be {"routes": [{"version": "3", "url": "http://...", "weight": 100}]}')
    try:
        routes = [Route(**{k: v for k, v in r.items() if k in ("version", "url", "weight", "fault")})
                  for r in raw["routes"]]
    except (TypeError, AttributeError) as exc:
        raise ConfigError(f"malformed route: {exc}") from None
    versions = [r.version for r in routes]
    if len(set(versions)) != len(versions):
        raise ConfigError(f"route versions must be distinct, got {versions}")
    if sum(r.weight for r in routes) != 100:
        raise ConfigError(f"route weights must sum to 100, got {[r.weight for r in routes]}")
    return routes


class Splitter:
    """ASGI app: admin under /splitter/, everything else proxied to a weighted route."""

    def __init__(self, routes: list[Route], timeout_s: float = 30.0) -> None:
        self.routes: list[Route] = []
        self.timeout_s = timeout_s
        self._client = None
        self.set_routes(routes)

    def set_routes(self, routes: list[Route]) -> None:
        for old in self.routes:
            WEIGHT.labels(old.version).set(0)
        for route in routes:
            WEIGHT.labels(route.version).set(route.weight)
        self.routes = routes

    def choose(self) -> Route:
        """Smooth weighted round robin (as in nginx): exact shares, evenly interleaved."""
        live = [r for r in self.routes if r.weight > 0]
        for r in live:
            r._current += r.weight
        best = max(live, key=lambda r: r._current)
        best._current -= 100
        return best

    @property
    def client(self):
        if self._client is None:  # created lazily, inside the server's event loop
            self._client = upstream_client(self.timeout_s)
        return self._client

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    if self._client is not None:
                        await self._client.aclose()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["path"].startswith(ADMIN_PREFIX) or scope["path"] == "/metrics":
            await self._admin(scope, receive, send)
            return
        body = await _read_body(receive)
        route = self.choose()
        route._served += 1
        if route.fault.delay_ms:
            await asyncio.sleep(route.fault.delay_ms / 1000)
        if route.fault.error_percent and (route._served * route.fault.error_percent) % 100 < route.fault.error_percent:
            await _send(send, 503, orjson.dumps({"error": f"fault injected on route v{route.version}"}),
                        [(VERSION_HEADER.encode(), route.version.encode())])
            ROUTED.labels(route.version, "503").inc()
            return
        await self._forward(scope, body, route, send)

    async def _forward(self, scope, body: bytes, route: Route, send) -> None:
        import httpx

        path = scope["path"] + (f"?{scope['query_string'].decode('latin-1')}" if scope.get("query_string") else "")
        headers = [(k, v) for k, v in scope["headers"] if k not in _HOP_HEADERS]
        try:
            resp = await self.client.request(scope["method"], route.url.rstrip("/") + path, content=body,
                                             headers=headers)
        except httpx.HTTPError as exc:
            ROUTED.labels(route.version, "502").inc()
            await _send(send, 502, orjson.dumps({"error": f"route v{route.version} at {route.url} did not answer: "
                                                          f"{type(exc).__name__}"}),
                        [(VERSION_HEADER.encode(), route.version.encode())])
            return
        ROUTED.labels(route.version, str(resp.status_code)).inc()
        out = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in resp.headers.items()
               if k.encode("latin-1") not in _HOP_HEADERS]
        if VERSION_HEADER not in resp.headers:
            out.append((VERSION_HEADER.encode(), route.version.encode()))
        await _send(send, resp.status_code, resp.content, out)

    async def _admin(self, scope, receive, send) -> None:
        path, method = scope["path"], scope["method"]
        if path == "/metrics":
            await _send(send, 200, generate_latest(), [(b"content-type", CONTENT_TYPE_LATEST.encode())])
        elif path == "/splitter/routes" and method == "GET":
            await _send(send, 200, orjson.dumps({"routes": [r.public() for r in self.routes]}))
        elif path == "/splitter/routes" and method == "PUT":
            try:
                self.set_routes(parse_routes(orjson.loads(await _read_body(receive))))
            except (ConfigError, orjson.JSONDecodeError) as exc:
                await _send(send, 400, orjson.dumps({"error": str(exc)}))
                return
            await _send(send, 200, orjson.dumps({"routes": [r.public() for r in self.routes]}))
        elif path == "/splitter/health":
            await _send(send, 200, b'{"ok": true}')
        else:
            await _send(send, 404, orjson.dumps({"error": f"no admin endpoint {method} {path}"}))


async def _read_body(receive) -> bytes:
    chunks, more = [], True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


async def _send(send, status: int, body: bytes, headers: list | None = None) -> None:
    headers = list(headers or [])
    if not any(k == b"content-type" for k, _ in headers):
        headers.append((b"content-type", b"application/json"))
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    from mlops.errors import exit_on_user_error

    p = argparse.ArgumentParser(prog="mlops-splitter", description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--http-port", type=int, required=True)
    p.add_argument("--routes", required=True, help='JSON: {"routes": [{"version", "url", "weight"}]}')
    args = p.parse_args(argv)
    with exit_on_user_error("splitter"):
        try:
            routes = parse_routes(orjson.loads(args.routes))
        except orjson.JSONDecodeError as exc:
            raise ConfigError(f"--routes is not JSON: {exc}") from None
    uvicorn.run(Splitter(routes), host=args.host, port=args.http_port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
