"""An append-only audit trail on S3: who did what to which model version, when and why.

Each event is its own object, ``audit/<model>/<UTC time>-<id>.json``, written
with ``If-None-Match: *`` so an event can never be overwritten; the trail is
the listing, in time order. The same facts are also set as MLflow tags on the
model version by the caller, so the registry UI shows them too.
"""

from __future__ import annotations

import getpass
import json
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

from mlops.errors import StorageError
from mlops.platform.storage import ObjectStore, safe_key

PREFIX = "audit"


@dataclass
class AuditEvent:
    action: str  # promote, approve, rollback, reject
    model: str
    version: str
    actor: str
    reason: str
    at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="milliseconds"))
    details: dict = field(default_factory=dict)  # alias moves, gate report location, metrics


def default_actor() -> str:
    """Who is acting when nobody says: the pipeline's or the user's login name."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def record(store: ObjectStore, event: AuditEvent, event_id: str | None = None) -> str:
    """Append one event; returns its key. Never overwrites an existing event.

    ``event_id`` names the event for good (a registry move records its event under the id in its
    journal): recording it again, after a crash, finds it there and writes nothing.
    """
    stamp = event.at.replace(":", "").replace("-", "").replace("+0000", "Z")
    key = safe_key(f"{PREFIX}/{event.model}/{stamp}-{event_id or uuid.uuid4().hex[:12]}.json")
    body = json.dumps(asdict(event), sort_keys=True).encode()
    if store.put_bytes_if(body, key, if_none_match=True) is None:
        if event_id is not None and store.get_bytes(key) == body:
            return key  # recorded before a crash
        raise StorageError(f"audit event {key} already exists: refusing to overwrite the audit trail")
    return key


def trail(store: ObjectStore, model: str) -> list[AuditEvent]:
    """Every recorded event for ``model``, oldest first."""
    events = []
    for key in store.list_keys(f"{PREFIX}/{model}"):
        events.append(AuditEvent(**json.loads(store.get_bytes(key))))
    return sorted(events, key=lambda e: e.at)
