"""The routing document: where a model's transformers mirror traffic (shadow), kept on S3.

The rollout controller writes ``serving/<model>/routing.json``; every
transformer replica polls it, locally and in a cluster alike, so starting or
stopping a shadow needs no restart and no admin port on the serving path.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from urllib.parse import urlparse

from mlops.errors import ConfigError
from mlops.platform.storage import ObjectStore, join_key


@dataclass(frozen=True)
class ShadowTarget:
    url: str  # base URL of the shadow predictor (http://host:port)
    model_version: str

    def __post_init__(self) -> None:
        parsed = urlparse(self.url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ConfigError(f"shadow url {self.url!r} must be an http(s) base URL such as http://127.0.0.1:8081")


@dataclass(frozen=True)
class Routing:
    shadow: ShadowTarget | None = None

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes, where: str) -> "Routing":
        try:
            raw = json.loads(data)
            shadow = raw.get("shadow")
            return cls(ShadowTarget(**shadow) if shadow else None)
        except (ValueError, TypeError, AttributeError) as exc:
            raise ConfigError(f"routing document {where} is malformed: {exc}") from None


def routing_key(model_name: str) -> str:
    return join_key("serving", model_name, "routing.json")


def read_routing(store: ObjectStore, model_name: str) -> Routing:
    """The current routing of ``model_name``; no document means no shadow."""
    key = routing_key(model_name)
    if not store.exists(key):
        return Routing()
    return Routing.from_json(store.get_bytes(key), f"s3://{store.bucket}/{key}")


def write_routing(store: ObjectStore, model_name: str, routing: Routing) -> None:
    store.put_bytes(routing.to_json(), routing_key(model_name), content_type="application/json")
