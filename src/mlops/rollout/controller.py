"""The rollout controller: shadow -> canary steps -> promote, or an automatic rollback.

Preconditions are checked before any traffic moves: production exists, the
candidate is the blessed ``staging`` version, and a high-stakes model has its
human approval (else the final promotion would be refused after minutes of
rollout). Each phase collects its window of traffic until it has enough
requests, then judges the policy's conditions; the phase fails early when the
errors already seen exceed what the whole phase may have, and fails when the
traffic needed does not arrive in time.

Promotion: traffic 100% to the candidate, then the ``production`` alias moves
by compare-and-set against the stable version. Rollback (any failed phase, or
any error on the way): shadow off, traffic 100% to stable, candidate retired,
its ``staging`` alias removed so it is not rolled out again, and an audit
record with the failed conditions. The registry's production alias never
leaves stable unless the promotion completed.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

from mlops.errors import RolloutError
from mlops.platform.storage import ObjectStore, join_key
from mlops.registry import audit
from mlops.registry import promotion as registry
from mlops.rollout import analysis
from mlops.rollout.policy import Phase, RolloutPolicy
from mlops.rollout.traffic import TrafficDriver

PROMOTED, ROLLED_BACK = "promoted", "rolled_back"


@dataclass
class PhaseResult:
    name: str  # "shadow" or "canary 25%"
    percent: int  # candidate share of live traffic (0 in shadow)
    requests: float
    seconds: float
    metrics: dict[str, float | None]
    verdicts: list[analysis.Verdict]
    passed: bool
    reason: str


@dataclass
class RolloutResult:
    model: str
    candidate: str
    stable: str
    outcome: str = ""
    reason: str = ""
    phases: list[PhaseResult] = field(default_factory=list)
    started_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    report_uri: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def markdown(self) -> str:
        lines = [f"# Rollout of {self.model} v{self.candidate} (stable v{self.stable}): **{self.outcome}**", "",
                 self.reason, "", "| phase | candidate share | requests | seconds | result | conditions |",
                 "|---|---|---|---|---|---|"]
        for p in self.phases:
            conds = "; ".join(f"{'ok' if v.passed else 'FAIL'} {v.condition} (was {_fmt(v.value)})"
                              for v in p.verdicts) or p.reason
            lines.append(f"| {p.name} | {p.percent}% | {p.requests:.0f} | {p.seconds:.1f} | "
                         f"{'pass' if p.passed else 'FAIL'} | {conds} |")
        return "\n".join(lines) + "\n"


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


class PhaseFailed(RolloutError):
    def __init__(self, result: PhaseResult) -> None:
        super().__init__(f"{result.name}: {result.reason}")
        self.result = result


def check_preconditions(model: str, candidate: str, high_stakes: bool) -> str:
    """The stable (production) version, once the candidate may be rolled out at all."""
    stable = registry.alias_version(model, registry.PRODUCTION)
    if stable is None:
        raise RolloutError(f"{model} has no production version to roll out against; promote a first version "
                           f"with `mlops promote {model} VERSION --project PROJECT --reason TEXT`")
    if candidate == stable:
        raise RolloutError(f"v{candidate} already is production")
    staging = registry.alias_version(model, registry.STAGING)
    if staging != candidate:
        raise RolloutError(f"v{candidate} is not the blessed staging version of {model} (staging is "
                           f"{'v' + staging if staging else 'unset'}): only a version the gate blessed is rolled out")
    if high_stakes and registry.approval(model, candidate) is None:
        raise registry.PromotionRefused(f"{model} is high-stakes: v{candidate} needs a recorded approval before its "
                                        f"rollout (mlops approve {model} {candidate} --by NAME --reason TEXT)")
    return stable


def run_phase(driver: TrafficDriver, policy: RolloutPolicy, phase: Phase, name: str, percent: int, stable: str,
              candidate: str, progress=print) -> PhaseResult:
    """Collect one window of traffic and judge it."""
    kind = "shadow" if name == "shadow" else "canary"
    started = time.monotonic()
    before = analysis.scrape(driver.metrics_urls())
    last_note = 0.0
    while True:
        time.sleep(policy.poll_s)
        delta = analysis.window(before, analysis.scrape(driver.metrics_urls()))
        metrics, requests = analysis.measure(delta, kind, stable, candidate)
        elapsed = time.monotonic() - started
        if requests >= phase.min_requests:
            verdicts = analysis.judge(metrics, phase.success)
            failed = [v for v in verdicts if not v.passed]
            reason = ("all conditions hold" if not failed else
                      "failed: " + "; ".join(f"{v.condition} (was {_fmt(v.value)})" for v in failed))
            return PhaseResult(name, percent, requests, elapsed, metrics, verdicts, not failed, reason)
        lost = analysis.hopeless(metrics, requests, phase.min_requests, phase.success)
        if lost is not None:
            verdicts = analysis.judge(metrics, phase.success)
            errors = round(metrics["error_rate"] * requests)
            return PhaseResult(name, percent, requests, elapsed, metrics, verdicts, False,
                               f"failed early: {lost.describe()} cannot hold over {phase.min_requests} requests "
                               f"after {errors} errors in {requests:.0f}")
        if elapsed > phase.timeout_s:
            return PhaseResult(name, percent, requests, elapsed, metrics, [], False,
                               f"only {requests:.0f} of {phase.min_requests} candidate requests arrived within "
                               f"{phase.timeout_s:.0f} s: not enough traffic to judge")
        if elapsed - last_note >= 5:
            last_note = elapsed
            progress(f"  {name}: {requests:.0f}/{phase.min_requests} requests, {elapsed:.0f} s")


def rollout(store: ObjectStore, driver: TrafficDriver, model: str, candidate: str, policy: RolloutPolicy, *,
            high_stakes: bool, actor: str, progress=print) -> RolloutResult:
    """Run the whole rollout of ``candidate``; returns what happened (promoted or rolled back)."""
    stable = check_preconditions(model, candidate, high_stakes)
    result = RolloutResult(model, candidate, stable)
    audit.record(store, audit.AuditEvent("rollout_start", model, candidate, actor,
                                         f"rollout against production v{stable} on {driver.describe()}",
                                         details={"stable": stable, "policy": policy.source}))
    try:
        progress(f"deploying v{candidate} next to production v{stable}")
        driver.deploy(candidate)
        if policy.shadow is not None:
            progress(f"shadow: mirroring all traffic to v{candidate}")
            driver.start_shadow(candidate)
            _passed(result, run_phase(driver, policy, policy.shadow, "shadow", 0, stable, candidate, progress),
                    progress)
            driver.stop_shadow()
        for percent in policy.canary_steps:
            progress(f"canary: {percent}% of live traffic to v{candidate}")
            driver.set_canary(stable, candidate, percent)
            _passed(result, run_phase(driver, policy, policy.canary, f"canary {percent}%", percent, stable,
                                      candidate, progress), progress)
        progress(f"all phases passed: 100% to v{candidate}, then production")
        driver.finish(winner=candidate, loser=stable)
        done = registry.promote(store, model, candidate, registry.PRODUCTION, expected_current=stable, actor=actor,
                                reason="rollout passed shadow and canary analysis", require_approval=high_stakes,
                                details={"rollout": [_summary(p) for p in result.phases]})
        result.outcome, result.reason = PROMOTED, (f"v{candidate} is production (v{done.previous} kept as rollback)"
                                                   if done.previous else f"v{candidate} is production")
    except BaseException as exc:  # noqa: BLE001 - any failure, even Ctrl-C, must leave stable serving
        reason = str(exc) if isinstance(exc, Exception) else f"interrupted ({type(exc).__name__})"
        _roll_back(store, driver, model, candidate, stable, actor, reason, result, progress)
        if not isinstance(exc, (PhaseFailed, RolloutError, registry.PromotionRefused)):
            raise
    result.report_uri = _publish(store, result)
    return result


def _passed(result: RolloutResult, phase: PhaseResult, progress) -> None:
    result.phases.append(phase)
    progress(f"  {phase.name}: {'pass' if phase.passed else 'FAIL'} after {phase.requests:.0f} requests "
             f"({phase.seconds:.1f} s): {phase.reason}")
    if not phase.passed:
        raise PhaseFailed(phase)


def _summary(p: PhaseResult) -> dict:
    return {"phase": p.name, "requests": round(p.requests), "passed": p.passed,
            "metrics": {k: (None if v is None else round(v, 6)) for k, v in p.metrics.items()}}


def _roll_back(store, driver, model, candidate, stable, actor, reason, result, progress) -> None:
    progress(f"rolling back: {reason}")
    steps = []
    for what, action in (("shadow off", driver.stop_shadow),
                         (f"traffic 100% to v{stable}", lambda: driver.finish(winner=stable, loser=candidate))):
        try:
            action()
            steps.append(what)
        except Exception as exc:  # noqa: BLE001 - keep restoring the rest; report what could not be done
            steps.append(f"{what} FAILED: {exc}")
    if registry.alias_version(model, registry.PRODUCTION) == candidate:  # only if a promotion got that far
        registry.rollback(store, model, actor, f"rollout of v{candidate} failed: {reason}", expected_current=candidate)
        steps.append(f"production alias back to v{stable}")
    if registry.alias_version(model, registry.STAGING) == candidate:
        from mlflow import MlflowClient

        client = MlflowClient()
        client.delete_registered_model_alias(model, registry.STAGING)
        client.set_model_version_tag(model, candidate, "mlops.rollout.rolled_back", reason[:500])
        steps.append(f"staging alias removed from v{candidate}")
    audit.record(store, audit.AuditEvent("rollout_rollback", model, candidate, actor, reason,
                                         details={"stable": stable, "restored": steps,
                                                  "phases": [_summary(p) for p in result.phases]}))
    result.outcome, result.reason = ROLLED_BACK, f"rolled back to v{stable}: {reason}"
    progress(f"rolled back: {', '.join(steps)}")


def _publish(store: ObjectStore, result: RolloutResult) -> str | None:
    import json

    key = join_key("reports", "rollout", result.model,
                   f"v{result.candidate}-{result.started_at.replace(':', '').replace('+0000', 'Z')}.json")
    try:
        store.put_bytes(json.dumps(result.to_dict(), indent=2, default=str).encode(), key,
                        content_type="application/json")
    except Exception:  # noqa: BLE001 - the audit trail already holds the outcome
        return None
    return f"s3://{store.bucket}/{key}"


def revert_production(store: ObjectStore, driver: TrafficDriver, model: str, actor: str, reason: str,
                      progress=print) -> registry.Promotion:
    """Production back to the version it replaced, traffic first, then the registry (monitoring's
    rollback when realized performance fell below the previous version's)."""
    current = registry.alias_version(model, registry.PRODUCTION)
    previous = registry.alias_version(model, registry.ROLLBACK)
    if previous is None or current is None:
        raise registry.PromotionRefused(f"{model} has no previous production version to return to")
    progress(f"reverting production v{current} -> v{previous}: {reason}")
    driver.deploy(previous)
    driver.finish(winner=previous, loser=current)
    return registry.rollback(store, model, actor, reason, expected_current=current)
