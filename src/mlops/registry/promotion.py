"""Registry promotion with MLflow aliases: compare-and-set, approvals, rollback, lineage.

Aliases (``staging``, ``production``, ``rollback``) replace the deprecated
registry stages. Every alias move happens under a lease lock on S3 (created
with ``If-None-Match: *``), and a promotion names the version it expects to
replace: if ``production`` moved since the gate compared against it, the
promotion is refused, so two concurrent promotions can never lose one.

A move is journaled, so a crash anywhere leaves a registry that is
consistent and that the next registry write completes. Inside the lock:
the whole move is written first as one registered-model tag (the journal),
then the aliases move, then the version tags, then the audit event (under
the journal's event id, so it is recorded once), and the journal goes last.
The aliases move in an order that never points ``production`` and
``rollback`` at one version, not even between two writes: the old
``rollback`` alias is removed first, then ``production`` moves, then
``rollback`` is set. Every promote or rollback starts by completing a
journal it finds; a rerun of the interrupted call then returns that move.
"""

from __future__ import annotations

import json
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Iterator

from mlops.errors import MlopsError, TrackingError
from mlops.platform.storage import ObjectStore, safe_key
from mlops.registry import audit
from mlops.training.tracking import mlflow_errors

STAGING, PRODUCTION, ROLLBACK = "staging", "production", "rollback"
ALIASES = (STAGING, PRODUCTION, ROLLBACK)
LOCK_LEASE_S = 60.0
ANY = "*"  # expected_current for moves that replace whatever is there (staging: the newest blessed wins)
PENDING_TAG = "mlops.registry.pending"  # the journal of a move in progress (a registered-model tag)
# What the evaluation gate compared a blessed version against ("none": no champion), and its report.
GATE_CHAMPION_TAG, GATE_REPORT_TAG = "mlops.gate.champion", "mlops.gate.report"


class PromotionRefused(MlopsError):
    """A promotion may not happen: unapproved high-stakes model, stale decision, unknown version."""


# -- the lock ---------------------------------------------------------------------
@contextmanager
def registry_lock(store: ObjectStore, model: str, wait_s: float = 30.0,
                  lease_s: float = LOCK_LEASE_S) -> Iterator[str]:
    """Hold the model's registry lock; a lock whose lease ran out (a crashed holder) is taken over."""
    with store.lease_lock(safe_key(f"locks/registry/{model}.json"), f"the registry lock of {model!r}",
                          wait_s=wait_s, lease_s=lease_s, refused=PromotionRefused) as owner:
        yield owner


# -- MLflow access ----------------------------------------------------------------
_NOT_FOUND = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND")


def _client():
    from mlflow import MlflowClient

    return MlflowClient()


def alias_version(model: str, alias: str) -> str | None:
    """The version an alias points at, or None."""
    from mlflow.exceptions import MlflowException

    with mlflow_errors(f"read alias {alias!r} of model {model!r}"):
        try:
            return str(_client().get_model_version_by_alias(model, alias).version)
        except MlflowException as exc:
            if exc.error_code in _NOT_FOUND:
                return None
            raise


def _require_version(model: str, version: str):
    from mlflow.exceptions import MlflowException

    with mlflow_errors(f"read {model} v{version}"):
        try:
            mv = _client().get_model_version(model, version)
        except MlflowException as exc:
            if exc.error_code not in _NOT_FOUND:
                raise
            raise PromotionRefused(f"model {model!r} has no version {version!r}") from None
    if mv.status != "READY":
        raise PromotionRefused(f"{model} v{version} is {mv.status}, not READY")
    return mv


def approval(model: str, version: str) -> dict | None:
    """The recorded human approval of a version, if any."""
    tags = _require_version(model, version).tags
    if "mlops.approval.by" not in tags:
        return None
    return {"by": tags["mlops.approval.by"], "reason": tags.get("mlops.approval.reason", ""),
            "at": tags.get("mlops.approval.at", "")}


# -- actions ------------------------------------------------------------------------
@dataclass
class Promotion:
    model: str
    version: str
    alias: str
    previous: str | None
    audit_key: str | None
    already_done: bool = False


def approve(store: ObjectStore, model: str, version: str, by: str, reason: str) -> str:
    """Record a human approval of ``version`` for production (tags + audit event)."""
    if not by.strip() or not reason.strip():
        raise PromotionRefused("an approval needs a name (--by) and a reason (--reason)")
    _require_version(model, version)
    event = audit.AuditEvent("approve", model, version, by, reason)
    client = _client()
    with mlflow_errors(f"record the approval of {model} v{version}"):
        for key, value in (("by", by), ("reason", reason), ("at", event.at)):
            client.set_model_version_tag(model, version, f"mlops.approval.{key}", value)
    return audit.record(store, event)


def promote(store: ObjectStore, model: str, version: str, alias: str, *, expected_current: str | None,
            actor: str, reason: str, require_approval: bool = False, details: dict | None = None) -> Promotion:
    """Point ``alias`` at ``version`` if it still points at ``expected_current`` (compare-and-set).

    Moving ``production`` keeps the replaced version under the ``rollback``
    alias. ``require_approval`` (high-stakes models) refuses a production
    promotion without a recorded approval.
    """
    if alias not in (STAGING, PRODUCTION):
        raise PromotionRefused(f"promote moves {STAGING!r} or {PRODUCTION!r}, not {alias!r}")
    _require_version(model, version)
    if alias == PRODUCTION and require_approval and approval(model, version) is None:
        raise PromotionRefused(f"{model} v{version} is high-stakes: production needs a recorded approval first "
                               f"(mlops approve {model} {version} --by NAME --reason TEXT)")
    version = str(version)
    with registry_lock(store, model):
        recovered = _complete_journal(store, model)
        current = alias_version(model, alias)
        if current == version:
            if recovered is not None and recovered.op == "promote" and recovered.aliases.get(alias) == version:
                return recovered.promotion(already_done=True)
            return _complete_interrupted(store, model, version, alias, actor, reason, details)
        if expected_current != ANY and current != (str(expected_current) if expected_current is not None else None):
            def name(v):
                return f"v{v}" if v is not None else "unset"

            raise PromotionRefused(
                f"{alias} of {model} is {name(current)} now, not {name(expected_current)} as when this decision "
                "was made: re-evaluate against the new champion")
        event = audit.AuditEvent("promote", model, version, actor, reason,
                                 details={"alias": alias, "previous": current, **(details or {})})
        aliases = {alias: version}
        tags = [(version, f"mlops.{alias}.{key}", value) for key, value in
                (("at", event.at), ("by", actor), ("reason", reason))]
        if alias == PRODUCTION:
            aliases[ROLLBACK] = current
            if current is not None:
                tags.append((current, "mlops.replaced_by", version))
        return _move(store, _Journal("promote", aliases, tags, asdict(event), uuid.uuid4().hex[:12], current))


def promote_blessed(store: ObjectStore, model: str, version: str, *, high_stakes: bool, actor: str,
                    reason: str) -> Promotion:
    """Production moves to a version the evaluation gate blessed, as a compare-and-set against the
    champion the gate compared it with; a high-stakes model needs a recorded approval first."""
    tags = _require_version(model, version).tags
    if GATE_CHAMPION_TAG not in tags:
        raise PromotionRefused(f"{model} v{version} was not blessed by the evaluation gate "
                               "(no gate decision recorded): it cannot be promoted")
    champion = None if tags[GATE_CHAMPION_TAG] == "none" else tags[GATE_CHAMPION_TAG]
    return promote(store, model, version, PRODUCTION, expected_current=champion, actor=actor, reason=reason,
                   require_approval=high_stakes, details={"gate_report": tags.get(GATE_REPORT_TAG, "")})


def _complete_interrupted(store, model, version, alias, actor, reason, details) -> Promotion:
    """The alias already points here without a journal: a repeat, or a move made outside this module (or by
    a release before the journal). Finish the record once."""
    recorded = [e for e in audit.trail(store, model)
                if e.action == "promote" and e.version == version and e.details.get("alias") == alias]
    if recorded:
        return Promotion(model, version, alias, recorded[-1].details.get("previous"), None, already_done=True)
    event = audit.AuditEvent("promote", model, version, actor, reason,
                             details={"alias": alias, "previous": None, "completed_after_interruption": True,
                                      **(details or {})})
    client = _client()
    with mlflow_errors(f"record the move of {alias} of {model} to v{version}"):
        for key, value in (("at", event.at), ("by", actor), ("reason", reason)):
            client.set_model_version_tag(model, version, f"mlops.{alias}.{key}", value)
    return Promotion(model, version, alias, None, audit.record(store, event), already_done=True)


def rollback(store: ObjectStore, model: str, actor: str, reason: str,
             expected_current: str | None = None) -> Promotion:
    """Point ``production`` back at the version it replaced; the rolled-back one becomes ``rollback``.

    ``expected_current`` names the version being rolled back (None: whatever production is). With
    it, a rerun of a call that was killed, or that finished without its caller knowing, returns that
    rollback instead of rolling back once more; a production that moved elsewhere is refused.
    """
    expected_current = None if expected_current is None else str(expected_current)
    with registry_lock(store, model):
        recovered = _complete_journal(store, model)
        if recovered is not None and recovered.op == "rollback" and expected_current in (None, recovered.previous):
            return recovered.promotion(already_done=True)
        current, previous = alias_version(model, PRODUCTION), alias_version(model, ROLLBACK)
        if expected_current is not None and current != expected_current:
            done = [e for e in audit.trail(store, model) if e.action == "rollback" and e.version == current
                    and e.details.get("previous") == expected_current]
            if done:  # this rollback happened already
                return Promotion(model, current, PRODUCTION, expected_current, None, already_done=True)
            raise PromotionRefused(f"production of {model} is v{current} now, not v{expected_current} as when this "
                                   "rollback was decided: nothing rolled back")
        if previous is None:
            raise PromotionRefused(f"{model} has no {ROLLBACK!r} version to return to "
                                   f"(production is v{current}, and nothing was replaced yet)")
        event = audit.AuditEvent("rollback", model, previous, actor, reason,
                                 details={"alias": PRODUCTION, "previous": current})
        tags = [(current, "mlops.rolled_back_at", event.at)] if current is not None else []
        return _move(store, _Journal("rollback", {PRODUCTION: previous, ROLLBACK: current}, tags, asdict(event),
                                     uuid.uuid4().hex[:12], current))


# -- the journal: one move, written before it starts, removed when it is done ---------------
@dataclass
class _Journal:
    op: str  # "promote" or "rollback"
    aliases: dict  # alias -> the version it must point at (None: unset)
    version_tags: list  # [version, tag, value]
    event: dict  # the AuditEvent, as it is recorded
    event_id: str  # the audit event's id: recorded once, however often the move is completed
    previous: str | None  # what the moved alias pointed at before

    @property
    def model(self) -> str:
        return self.event["model"]

    def promotion(self, audit_key: str | None = None, already_done: bool = False) -> Promotion:
        alias = PRODUCTION if PRODUCTION in self.aliases else STAGING
        return Promotion(self.model, self.aliases[alias], alias, self.previous, audit_key, already_done)


def _move(store: ObjectStore, journal: _Journal) -> Promotion:
    client = _client()
    with mlflow_errors(f"journal a {journal.op} of {journal.model}"):
        client.set_registered_model_tag(journal.model, PENDING_TAG, json.dumps(asdict(journal), sort_keys=True))
    return journal.promotion(_apply(store, journal))


def _complete_journal(store: ObjectStore, model: str) -> _Journal | None:
    """Complete a move a crash interrupted (called under the lock); returns it, or None when there was none."""
    from mlflow.exceptions import MlflowException

    with mlflow_errors(f"read the registry journal of {model}"):
        try:
            pending = _client().get_registered_model(model).tags.get(PENDING_TAG)
        except MlflowException as exc:
            if exc.error_code not in _NOT_FOUND:
                raise
            pending = None  # no such model: nothing to complete (the caller says what is missing)
    if pending is None:
        return None
    try:
        journal = _Journal(**json.loads(pending))
    except (ValueError, TypeError) as exc:
        raise TrackingError(f"the registry journal of {model} (registered-model tag {PENDING_TAG}) is unreadable "
                            f"({exc}); inspect the aliases and remove the tag by hand") from None
    _apply(store, journal)
    return journal


def _apply(store: ObjectStore, journal: _Journal) -> str:
    """Bring the registry to what the journal says; every step is safe to repeat. Returns the audit key."""
    client, model = _client(), journal.model
    with mlflow_errors(f"move the aliases of {model} ({journal.op})"):
        if PRODUCTION in journal.aliases:
            # production and rollback never name one version, even between two writes: the old
            # rollback alias goes first, then production moves, then rollback is set.
            production, rollback_to = journal.aliases[PRODUCTION], journal.aliases.get(ROLLBACK)
            current_rollback = alias_version(model, ROLLBACK)
            if current_rollback is not None and current_rollback != rollback_to:
                client.delete_registered_model_alias(model, ROLLBACK)
            if alias_version(model, PRODUCTION) != production:
                client.set_registered_model_alias(model, PRODUCTION, production)
            if rollback_to is not None and alias_version(model, ROLLBACK) != rollback_to:
                client.set_registered_model_alias(model, ROLLBACK, rollback_to)
        if STAGING in journal.aliases:
            client.set_registered_model_alias(model, STAGING, journal.aliases[STAGING])
        for version, tag, value in journal.version_tags:
            client.set_model_version_tag(model, version, tag, value)
    key = audit.record(store, audit.AuditEvent(**journal.event), event_id=journal.event_id)
    with mlflow_errors(f"close the registry journal of {model}"):
        client.delete_registered_model_tag(model, PENDING_TAG)
    return key


LINEAGE_TAGS = (
    ("project", "mlops.project"),
    ("project digest", "mlops.project_digest"),
    ("raw data", "mlops.raw_data_digest"),
    ("training rows", "mlops.dataset_digest"),
    ("feature snapshot", "mlops.feature_snapshot"),
    ("feature definitions", "mlops.feature_definitions"),
    ("code", "mlops.code_version"),
    ("image", "mlops.image"),
    ("environment lock", "mlops.environment_digest"),
)


def lineage(model: str, version: str) -> list[tuple[str, str]]:
    """model -> run -> project -> data -> features -> code -> image -> environment, as (label, value) pairs."""
    mv = _require_version(model, version)
    client = _client()
    run = client.get_run(mv.run_id)
    aliases = ", ".join(getattr(mv, "aliases", []) or []) or "-"
    rows = [("model", f"{model} v{version} (aliases: {aliases})"),
            ("run", f"{mv.run_id} (experiment {run.info.experiment_id})"),
            ("data", run.data.tags.get("mlops.dataset_uri", "-"))]
    rows += [(label, run.data.tags.get(tag, "-")) for label, tag in LINEAGE_TAGS]
    return rows
