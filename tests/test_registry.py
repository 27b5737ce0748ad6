"""Registry promotion against the real MLflow and S3: aliases, compare-and-set, approvals, rollback, audit.

Each test's model belongs to a renamed copy of an example project (credit: high-stakes; churn: not), so the
CLI's promote reads the gate of the very project the model is of.
"""

import json
import os
import threading
import time

import pytest
from mlflow import MlflowClient

from mlops.registry import audit
from mlops.registry import promotion as registry
from mlops.registry.promotion import PRODUCTION, ROLLBACK, STAGING, PromotionRefused
from mlops.stages import register
from tests.projects import CHURN, CREDIT, renamed
from tests.registered import registered_versions, training_run

pytestmark = pytest.mark.platform


def new_model(tmp_path, name, versions=3, example=CREDIT):
    """Register ``versions`` small model versions of ``name``, the model of a renamed copy of ``example``."""
    return registered_versions(tmp_path, renamed(example, tmp_path / "projects", name), example, versions)


def project_root(tmp_path, name):
    """The folder of the project ``new_model`` made for model ``name``."""
    return str(tmp_path / "projects" / name)


@pytest.fixture
def model(platform, tmp_path, request):
    name = f"reg-{request.node.name[:40].replace('[', '-').replace(']', '').replace('_', '-')}".rstrip("-")
    return name, new_model(tmp_path, name)


def test_promote_to_staging_records_alias_tags_and_audit(store, model):
    name, (v1, *_) = model
    done = registry.promote(store, name, v1, STAGING, expected_current=None, actor="ci", reason="blessed by the gate",
                            details={"gate_report": "s3://mlops/reports/gate/x.json"})
    assert registry.alias_version(name, STAGING) == v1 and done.previous is None
    tags = MlflowClient().get_model_version(name, v1).tags
    assert tags["mlops.staging.by"] == "ci" and tags["mlops.staging.reason"] == "blessed by the gate"
    [event] = audit.trail(store, name)
    assert (event.action, event.version, event.details["alias"]) == ("promote", v1, STAGING)
    assert event.details["gate_report"].startswith("s3://")


def test_production_keeps_the_replaced_version_for_rollback(store, model):
    name, (v1, v2, _) = model
    registry.promote(store, name, v1, PRODUCTION, expected_current=None, actor="ci", reason="first")
    registry.promote(store, name, v2, PRODUCTION, expected_current=v1, actor="ci", reason="better")
    assert registry.alias_version(name, PRODUCTION) == v2 and registry.alias_version(name, ROLLBACK) == v1
    assert MlflowClient().get_model_version(name, v1).tags["mlops.replaced_by"] == v2
    back = registry.rollback(store, name, actor="oncall", reason="latency regression")
    assert (back.version, back.previous) == (v1, v2)
    assert registry.alias_version(name, PRODUCTION) == v1 and registry.alias_version(name, ROLLBACK) == v2
    assert [e.action for e in audit.trail(store, name)] == ["promote", "promote", "rollback"]


def test_a_stale_decision_is_refused(store, model):
    name, (v1, v2, v3) = model
    registry.promote(store, name, v1, PRODUCTION, expected_current=None, actor="ci", reason="first")
    registry.promote(store, name, v2, PRODUCTION, expected_current=v1, actor="ci", reason="second")
    with pytest.raises(PromotionRefused, match=f"production of {name} is v{v2} now, not v{v1}"):
        registry.promote(store, name, v3, PRODUCTION, expected_current=v1, actor="ci", reason="judged against v1")
    assert registry.alias_version(name, PRODUCTION) == v2


def test_concurrent_promotions_never_lose_one(store, model):
    """Two promotions decided against the same champion race: exactly one wins, the other is refused."""
    name, (v1, v2, v3) = model
    registry.promote(store, name, v1, PRODUCTION, expected_current=None, actor="ci", reason="first")
    outcomes, barrier = {}, threading.Barrier(2)

    def attempt(version):
        barrier.wait()
        try:
            registry.promote(store, name, version, PRODUCTION, expected_current=v1, actor="ci", reason="race")
            outcomes[version] = "won"
        except PromotionRefused as exc:
            outcomes[version] = str(exc)

    threads = [threading.Thread(target=attempt, args=(v,)) for v in (v2, v3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [v for v, o in outcomes.items() if o == "won"]
    assert len(winners) == 1, outcomes
    loser = ({v2, v3} - set(winners)).pop()
    assert "re-evaluate" in outcomes[loser]
    assert registry.alias_version(name, PRODUCTION) == winners[0]
    assert registry.alias_version(name, ROLLBACK) == v1
    promotions = [e for e in audit.trail(store, name) if e.details.get("alias") == PRODUCTION]
    assert [e.version for e in promotions] == [v1, winners[0]]


def test_high_stakes_production_needs_a_recorded_approval(store, model):
    name, (v1, *_) = model
    with pytest.raises(PromotionRefused, match=f"mlops approve {name} {v1} --by NAME --reason TEXT"):
        registry.promote(store, name, v1, PRODUCTION, expected_current=None, actor="ci", reason="x",
                         require_approval=True)
    with pytest.raises(PromotionRefused, match="needs a name"):
        registry.approve(store, name, v1, by=" ", reason="looks good")
    registry.approve(store, name, v1, by="alice", reason="reviewed the fairness report")
    assert registry.approval(name, v1)["by"] == "alice"
    registry.promote(store, name, v1, PRODUCTION, expected_current=None, actor="ci", reason="approved",
                     require_approval=True)
    assert registry.alias_version(name, PRODUCTION) == v1
    assert [e.action for e in audit.trail(store, name)] == ["approve", "promote"]


def test_a_rerun_after_a_crash_completes_the_promotion_once(store, model):
    name, (v1, v2, _) = model
    registry.promote(store, name, v1, PRODUCTION, expected_current=None, actor="ci", reason="first")
    # The process died right after moving the alias, before tags and audit.
    MlflowClient().set_registered_model_alias(name, PRODUCTION, v2)
    rerun = registry.promote(store, name, v2, PRODUCTION, expected_current=v1, actor="ci", reason="rerun")
    assert rerun.already_done and rerun.audit_key
    again = registry.promote(store, name, v2, PRODUCTION, expected_current=v1, actor="ci", reason="rerun")
    assert again.already_done and again.audit_key is None
    promotions = [e for e in audit.trail(store, name) if e.version == v2]
    assert len(promotions) == 1 and promotions[0].details["completed_after_interruption"]


def test_an_expired_lock_is_taken_over_and_a_live_one_waits(store, model):
    name, (v1, *_) = model
    key = f"locks/registry/{name}.json"
    store.put_bytes(json.dumps({"owner": "crashed", "expires": time.time() - 1}).encode(), key)
    registry.promote(store, name, v1, STAGING, expected_current=None, actor="ci", reason="after a crash")
    assert not store.exists(key)
    store.put_bytes(json.dumps({"owner": "busy-host:1", "expires": time.time() + 60}).encode(), key)
    with pytest.raises(PromotionRefused, match="held by busy-host:1"):
        with registry.registry_lock(store, name, wait_s=0.5):
            pass
    store.client.remove_object(store.bucket, key)


def test_unknown_versions_and_aliases_are_refused(store, model):
    name, _ = model
    with pytest.raises(PromotionRefused, match="has no version '99'"):
        registry.promote(store, name, "99", STAGING, expected_current=None, actor="ci", reason="x")
    with pytest.raises(PromotionRefused, match="not 'canary'"):
        registry.promote(store, name, "1", "canary", expected_current=None, actor="ci", reason="x")
    with pytest.raises(PromotionRefused, match="no 'rollback' version"):
        registry.rollback(store, name, actor="ci", reason="x")


def test_audit_events_cannot_be_overwritten(store):
    assert store.put_bytes_if(b"{}", "audit/x/once.json", if_none_match=True) is not None
    assert store.put_bytes_if(b"{}", "audit/x/once.json", if_none_match=True) is None


def test_lineage_names_every_link(store, model, tmp_path):
    from mlops.project import load_project

    name, (v1, *_) = model
    rows = dict(registry.lineage(name, v1))
    assert rows["model"].startswith(f"{name} v{v1}")
    project = load_project(project_root(tmp_path, name))
    assert (rows["project"], rows["project digest"]) == (name, project.digest)
    assert rows["code"] not in ("-", "unknown") and rows["environment lock"].startswith("sha256:")
    assert rows["training rows"].startswith("sha256:")


def test_cli_approve_lineage_rollback_audit(store, model):
    import os
    import subprocess
    import sys

    name, (v1, v2, _) = model

    def mlops(*args):
        return subprocess.run([sys.executable, "-m", "mlops.cli", *args], capture_output=True, text=True,
                              env=dict(os.environ), timeout=120)

    approved = mlops("approve", name, v1, "--by", "alice", "--reason", "fairness reviewed")
    assert approved.returncode == 0 and f"approved {name} v{v1} by alice" in approved.stdout
    registry.promote(store, name, v1, PRODUCTION, expected_current=None, actor="ci", reason="first")
    registry.promote(store, name, v2, PRODUCTION, expected_current=v1, actor="ci", reason="second")
    lineage = mlops("lineage", name, v2)
    assert lineage.returncode == 0 and "feature snapshot" in lineage.stdout and "environment lock" in lineage.stdout
    back = mlops("rollback", name, "--reason", "bad canary", "--by", "oncall")
    assert back.returncode == 0 and f"production is v{v1} again" in back.stdout
    trail = mlops("audit", name)
    assert [line.split()[1] for line in trail.stdout.splitlines()] == ["approve", "promote", "promote", "rollback"]
    missing = mlops("rollback", "no-such-model", "--reason", "x")
    assert missing.returncode == 1 and "error:" in missing.stderr and "Traceback" not in missing.stderr


def _mlops(*args):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "mlops.cli", *args], capture_output=True, text=True,
                          env=dict(os.environ), timeout=120)


def test_cli_promote_needs_a_gate_decision_and_an_approval_when_high_stakes(store, model, tmp_path):
    name, (v1, v2, _) = model
    project = ("--project", project_root(tmp_path, name))  # a copy of credit-default, whose gate is high-stakes

    unblessed = _mlops("promote", name, v1, "--reason", "trust me", *project)
    assert unblessed.returncode == 1 and "was not blessed by the evaluation gate" in unblessed.stderr
    client = MlflowClient()
    client.set_model_version_tag(name, v1, "mlops.gate.champion", "none")  # as the promote step records it
    refused = _mlops("promote", name, v1, "--reason", "ship it", *project)
    assert refused.returncode == 1 and f"mlops approve {name} {v1}" in refused.stderr
    assert _mlops("approve", name, v1, "--by", "alice", "--reason", "ok").returncode == 0
    done = _mlops("promote", name, v1, "--reason", "approved", "--by", "alice", *project)
    assert done.returncode == 0 and f"{name} v{v1} is production" in done.stdout
    client.set_model_version_tag(name, v2, "mlops.gate.champion", "none")  # judged before v1 went live
    client.set_model_version_tag(name, v2, "mlops.approval.by", "bob")
    stale = _mlops("promote", name, v2, "--reason", "approved", *project)
    assert stale.returncode == 1 and "re-evaluate against the new champion" in stale.stderr


def test_cli_promote_of_a_project_that_is_not_high_stakes_needs_no_approval(platform, store, tmp_path):
    """Churn's gate is not high-stakes: a blessed version is promoted without `mlops approve`."""
    name = "reg-churn-cli-promote"
    v1, v2 = new_model(tmp_path, name, versions=2, example=CHURN)
    client = MlflowClient()
    client.set_model_version_tag(name, v1, "mlops.gate.champion", "none")
    done = _mlops("promote", name, v1, "--reason", "blessed", "--by", "ci", "--project", project_root(tmp_path, name))
    assert done.returncode == 0, done.stderr
    assert f"{name} v{v1} is production" in done.stdout and registry.approval(name, v1) is None
    assert registry.alias_version(name, PRODUCTION) == v1
    assert [e.action for e in audit.trail(store, name)] == ["promote"]


def test_cli_promote_refuses_a_model_of_another_project(platform, store, tmp_path):
    name = "reg-not-this-project"
    [v1] = new_model(tmp_path, name, versions=1, example=CHURN)
    MlflowClient().set_model_version_tag(name, v1, "mlops.gate.champion", "none")
    wrong = _mlops("promote", name, v1, "--reason", "x", "--project", "churn")
    assert wrong.returncode == 1 and "Traceback" not in wrong.stderr
    assert f"{name} is not the model of project churn (churn)" in wrong.stderr
    unnamed = _mlops("promote", name, v1, "--reason", "x", "--project", "")
    assert unnamed.returncode == 1 and "--project" in unnamed.stderr
    assert registry.alias_version(name, PRODUCTION) is None and audit.trail(store, name) == []


def test_promotion_rerun_after_a_crash_reuses_the_registered_version(store, platform, tmp_path):
    """The process died after registering, before any alias moved: the rerun completes without a duplicate."""
    from mlops.stages import promote_candidate

    name = "reg-crash-after-register"
    project = renamed(CREDIT, tmp_path / "projects", name)
    run, digest = training_run(tmp_path, project, CREDIT, {"max_iter": 5})
    orphan = register(run.model_uri, name, run.run_id, digest)  # ...and then the crash
    assert registry.alias_version(name, STAGING) is None  # consistent: nothing points at a half-done promotion
    version, aliases = promote_candidate(store, run.model_uri, name, run.run_id, digest, None, False,
                                         "s3://mlops/reports/gate/x/report.html", {"f1": 0.5})
    assert version == orphan and aliases == [STAGING, PRODUCTION]
    assert len(MlflowClient().search_model_versions(f"name = '{name}'")) == 1
    assert registry.alias_version(name, PRODUCTION) == orphan


# -- a registry move killed between any two of its writes ------------------------------------------

# Run in a child process: the registry call, with every write it makes to MLflow and to the audit trail
# counted, and the process killed (os._exit: no cleanup, no finally, the lock left held) just before
# write number KILL_AFTER. Prints COMPLETED and the count when the call got through.
KILLED_MOVE = r"""
import json, os, sys
from mlflow import MlflowClient
from mlops.registry import promotion as registry
from mlops.training import tracking
from mlops.platform.storage import ObjectStore

tracking.connect()  # as every registry command does
limit, done = int(os.environ["KILL_AFTER"]), [0]

def counted(write):
    def wrapper(*args, **kwargs):
        if done[0] == limit:
            os._exit(137)
        result = write(*args, **kwargs)
        done[0] += 1
        return result
    return wrapper

for name in ("set_registered_model_alias", "delete_registered_model_alias", "set_model_version_tag",
             "set_registered_model_tag", "delete_registered_model_tag"):
    setattr(MlflowClient, name, counted(getattr(MlflowClient, name)))
put = ObjectStore.put_bytes_if
audit_put = counted(put)
ObjectStore.put_bytes_if = lambda self, data, key, **kw: (audit_put if key.startswith("audit/") else put)(
    self, data, key, **kw)
store, call = ObjectStore.from_env(), json.loads(sys.argv[1])
if call["op"] == "rollback":
    registry.rollback(store, call["model"], "ci", "killed rollback")
else:
    registry.promote(store, call["model"], call["version"], registry.PRODUCTION, expected_current=call["expected"],
                     actor="ci", reason="killed promotion")
print("COMPLETED", done[0])
"""


def _aliases(name: str) -> tuple[str | None, str | None]:
    return registry.alias_version(name, PRODUCTION), registry.alias_version(name, ROLLBACK)


def _set_aliases(name: str, production: str, rollback: str) -> None:
    client = MlflowClient()
    client.set_registered_model_alias(name, PRODUCTION, production)
    client.set_registered_model_alias(name, ROLLBACK, rollback)


def _expire_lock(store, name: str) -> None:
    """As if the killed holder's lease ran out (the next call then takes the lock over)."""
    key = f"locks/registry/{name}.json"
    if store.exists(key):
        store.put_bytes(json.dumps({"owner": "killed", "expires": time.time() - 1}).encode(), key)


@pytest.mark.parametrize("op", ["rollback", "promote"])
def test_a_move_killed_between_any_two_writes_is_consistent_and_a_rerun_completes_it(store, model, op):
    import subprocess
    import sys

    name, (v1, v2, v3) = model
    start, goal = {"rollback": ((v2, v1), (v1, v2)), "promote": ((v2, v1), (v3, v2))}[op]
    call = {"op": op, "model": name, "version": v3, "expected": v2}
    kill_after, points = 0, []
    while True:
        _set_aliases(name, *start)
        events_before = len(audit.trail(store, name))
        child = subprocess.run([sys.executable, "-c", KILLED_MOVE, json.dumps(call)], capture_output=True, text=True,
                               env={**os.environ, "KILL_AFTER": str(kill_after)}, timeout=120)
        completed = "COMPLETED" in child.stdout
        assert completed or child.returncode == 137, child.stderr[-2000:]
        # What a reader sees right after the kill: production and rollback never on one version, production
        # on the old or the new version.
        production, rollback_to = _aliases(name)
        assert production != rollback_to, (kill_after, production, rollback_to)
        assert production in (start[0], goal[0]), (kill_after, production)
        points.append((kill_after, production, rollback_to))
        _expire_lock(store, name)
        rerun = (registry.rollback(store, name, "ci", "rerun", expected_current=v2) if op == "rollback" else
                 registry.promote(store, name, v3, PRODUCTION, expected_current=v2, actor="ci", reason="rerun"))
        assert (rerun.version, rerun.previous) == goal, kill_after
        # A rerun completes the move, or finds it done; it never repeats it.
        assert rerun.already_done == (kill_after > 0), kill_after
        assert _aliases(name) == goal, kill_after
        assert registry.PENDING_TAG not in MlflowClient().get_registered_model(name).tags
        moves = [e for e in audit.trail(store, name)[events_before:] if e.action == op]
        assert len(moves) == 1 and moves[0].version == goal[0], (kill_after, moves)
        if completed:
            break
        kill_after += 1
    writes = int(child.stdout.split()[-1])
    assert kill_after == writes and writes >= 6, points  # journal, aliases, tags, audit, journal closed
    print(f"\n[{op} killed at each of its {writes} writes] states seen: {points}")


def test_talking_to_mlflow_imports_no_feast_and_mlflow_still_sends_its_own_headers(platform):
    """Feast's MLflow header plugin would import all of Feast (3.5 s) into every process that talks to MLflow:
    each registry command, train, evaluate and promote step and the predictor's cold start."""
    import subprocess
    import sys

    code = ("import sys; from mlflow import MlflowClient; from mlops.training import tracking; tracking.connect(); "
            "MlflowClient().search_registered_models(); "
            "from mlflow.tracking.request_header.registry import resolve_request_headers; "
            "print('feast' in sys.modules, resolve_request_headers().get('User-Agent', '').startswith('mlflow'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ),
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["False", "True"], done.stdout
