"""A test double of KServe's Knative-mode control plane, for the rollout's cluster driver. Tests only.

No cluster runs here, so ``tests/test_cluster_rollout.py`` drives the real
:class:`mlops.rollout.cluster.ClusterTraffic` against this: an HTTP server on
127.0.0.1 speaking the part of the Kubernetes API the driver uses through the
kubernetes client (``CustomObjectsApi``: GET, POST, merge-PATCH and DELETE of
``serving.kserve.io/v1beta1`` InferenceServices), with a reconciler thread
that follows KServe's and Knative's rules, asynchronously and with delays.
It is never a replacement for ``make kind-e2e``; it is what lets the
driver's waits and patch order be tested at all.

The rules, and the upstream lines each follows (KServe master between 0.20
and 0.21 at aaac4e294, Knative Serving knative-v1.21.1 at b44ebb26a):

1. A PATCH is a JSON merge patch (RFC 7386: ``null`` deletes a field); the
   kubernetes client sends dict bodies as ``application/merge-patch+json``
   (kubernetes 30.1 ``client/api/custom_objects_api.py``, the content type
   of ``patch_namespaced_custom_object``). A change of ``spec`` bumps
   ``metadata.generation``.
2. The status is stale until the controller reconciles: for ``reconcile_delay_s``
   after a spec change, GET answers the previous status, Ready included.
3. KServe reconciles the predictor's Knative Service from the spec. The
   Configuration gets a new Revision for each new template, i.e. each change
   of the predictor's spec other than ``canaryTrafficPercent``
   (``reconcileKsvc`` copies ``ConfigurationSpec`` when it differs:
   ``pkg/controller/v1beta1/inferenceservice/reconcilers/knative/ksvc_reconciler.go``
   225-247; Knative creates the Revision of the new generation:
   ``pkg/reconciler/configuration/configuration.go`` 59-96). Revisions are
   named ``<isvc>-predictor-<n, 5 digits>`` and are Ready ``ready_delay_s``
   after they are created.
4. Traffic targets (``ksvc_reconciler.go`` 123-164): with
   ``canaryTrafficPercent`` set and a last rolled-out revision, ``N%`` to
   ``latestRevision: true`` and ``100-N%`` to the last rolled-out revision
   (tag ``prev``), that second target left out at ``N == 100``; otherwise
   100% to ``latestRevision: true``.
5. ``latestRevision: true`` means the latest *ready* Revision, and a target
   whose Revision is not ready cannot be routed: the route keeps serving
   what it served before (``pkg/reconciler/route/traffic/traffic.go``
   352-377; ``pkg/apis/serving/v1/route_types.go`` 88-93).
6. KServe's status (``pkg/apis/serving/v1beta1/inference_service_status.go``
   ``PropagateStatus``, 567-636): ``latestCreatedRevision``,
   ``latestReadyRevision`` and ``traffic`` from the Knative Service; the
   latest rolled-out revision moves to the latest ready one when that one
   has 100% through ``latestRevision``, and back to the previous rolled-out
   one when the latest ready one (also the latest created) is split;
   ``observedGeneration`` is the Knative Service's, not the
   InferenceService's (so it cannot tell whether a patch was reconciled).

What callers would get is recorded: :meth:`served` is the route's split by
model version (the predictor's ``MLOPS_MODEL_VERSION``), and
:attr:`timeline` every change of it, stamped with ``time.monotonic()``.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

PATH = re.compile(r"^/apis/serving\.kserve\.io/v1beta1/namespaces/([^/]+)/inferenceservices(?:/([^/?]+))?/?(?:\?.*)?$")
MERGE_PATCH = "application/merge-patch+json"


def merge_patch(target: object, patch: object) -> object:
    """RFC 7386: objects merge recursively, ``null`` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def _template(spec: dict) -> dict:
    """What makes a Revision: the predictor's spec without the traffic split (rule 3)."""
    predictor = {k: v for k, v in spec.get("predictor", {}).items() if k != "canaryTrafficPercent"}
    return predictor


def _version_of(template: dict) -> str:
    env = template.get("model", {}).get("env", [])
    return next((e["value"] for e in env if e.get("name") == "MLOPS_MODEL_VERSION"), "?")


@dataclass
class _Revision:
    name: str
    template: dict
    ready_at: float

    @property
    def version(self) -> str:
        return _version_of(self.template)

    def ready(self, now: float) -> bool:
        return now >= self.ready_at


@dataclass
class _Service:
    """One InferenceService: its object as the API serves it, and the Knative state behind it."""

    obj: dict
    changed_at: float  # when the spec last changed
    reconciled_generation: int = 0
    ksvc_generation: int = 0
    revisions: list[_Revision] = field(default_factory=list)
    targets: list[dict] = field(default_factory=list)  # the Knative Service's traffic (rule 4)
    route: list[dict] = field(default_factory=list)  # what is served: [{revisionName, percent, latestRevision}]
    route_ready: bool = False
    rolled_out: str = ""
    previous_rolled_out: str = ""

    @property
    def name(self) -> str:
        return self.obj["metadata"]["name"]


class KServeControlPlane:
    """The double: ``start()``, point a kubeconfig at :attr:`url` (:meth:`kubeconfig`), ``stop()``."""

    def __init__(self, reconcile_delay_s: float = 0.5, ready_delay_s: float = 1.0, tick_s: float = 0.02) -> None:
        self.reconcile_delay_s, self.ready_delay_s, self.tick_s = reconcile_delay_s, ready_delay_s, tick_s
        self.services: dict[tuple[str, str], _Service] = {}
        self.timeline: list[tuple[float, str, dict[str, int]]] = []  # (time, isvc, {version: percent})
        self.requests: list[tuple[str, str, str]] = []  # (method, path, content type)
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._threads = [threading.Thread(target=self._server.serve_forever, daemon=True),
                         threading.Thread(target=self._reconcile_forever, daemon=True)]

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> "KServeControlPlane":
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()

    def kubeconfig(self, path: Path, context: str = "kserve-double") -> Path:
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": context,
            "clusters": [{"name": context, "cluster": {"server": self.url}}],
            "users": [{"name": context, "user": {"token": "test"}}],
            "contexts": [{"name": context, "context": {"cluster": context, "user": context}}]}))
        return path

    # -- what tests read ----------------------------------------------------------------
    def served(self, name: str, namespace: str = "mlops") -> dict[str, int]:
        """The route's split by model version (what callers get now)."""
        with self._lock:
            service = self.services.get((namespace, name))
            return self._split(service) if service else {}

    def object(self, name: str, namespace: str = "mlops") -> dict:
        with self._lock:
            return copy.deepcopy(self.services[(namespace, name)].obj)

    def revisions(self, name: str, namespace: str = "mlops") -> list[tuple[str, str]]:
        with self._lock:
            return [(r.name, r.version) for r in self.services[(namespace, name)].revisions]

    def put_spec(self, name: str, spec: dict, namespace: str = "mlops") -> None:
        """Replace the spec as someone else would (kubectl edit, an aborted run): a spec change like any other."""
        with self._lock:
            service = self.services[(namespace, name)]
            service.obj["spec"] = copy.deepcopy(spec)
            self._spec_changed(service)

    def _split(self, service: _Service) -> dict[str, int]:
        versions = {r.name: r.version for r in service.revisions}
        split: dict[str, int] = {}
        for target in service.route:
            if target["percent"]:
                version = versions[target["revisionName"]]
                split[version] = split.get(version, 0) + target["percent"]
        return split

    # -- the API ---------------------------------------------------------------------------
    def _handler(self):
        plane = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def _reply(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> object:
                return json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"null")

            def _route(self, method: str) -> None:
                plane.requests.append((method, self.path, self.headers.get("Content-Type", "")))
                match = PATH.match(self.path)
                if not match:
                    return self._reply(404, _status(404, "NotFound", f"no such path {self.path}"))
                namespace, name = match.groups()
                status, body = plane._serve(method, namespace, name, self.headers.get("Content-Type", ""),
                                            self._body() if method in ("POST", "PATCH") else None)
                self._reply(status, body)

            def do_GET(self) -> None:
                self._route("GET")

            def do_POST(self) -> None:
                self._route("POST")

            def do_PATCH(self) -> None:
                self._route("PATCH")

            def do_DELETE(self) -> None:
                self._route("DELETE")

        return Handler

    def _serve(self, method: str, namespace: str, name: str | None, content_type: str,
               body: object) -> tuple[int, dict]:
        with self._lock:
            key = (namespace, name)
            if method == "POST":
                name = body["metadata"]["name"]
                if (namespace, name) in self.services:
                    return 409, _status(409, "AlreadyExists", f'inferenceservices "{name}" already exists')
                obj = copy.deepcopy(body)
                obj["metadata"].update({"namespace": namespace, "generation": 1, "uid": str(uuid.uuid4()),
                                        "resourceVersion": "1"})
                obj["status"] = {}
                self.services[(namespace, name)] = _Service(obj, time.monotonic())
                return 201, copy.deepcopy(obj)
            service = self.services.get(key)
            if service is None:
                return 404, _status(404, "NotFound", f'inferenceservices.serving.kserve.io "{name}" not found')
            if method == "GET":
                return 200, copy.deepcopy(service.obj)
            if method == "DELETE":
                del self.services[key]
                return 200, _status(200, "", "deleted", status="Success")
            if content_type.split(";")[0].strip() != MERGE_PATCH:  # rule 1: the only patch type the client sends
                return 415, _status(415, "UnsupportedMediaType", f"unsupported patch type {content_type!r}")
            patched = merge_patch(service.obj, {k: v for k, v in body.items() if k in ("spec", "metadata")})
            if patched.get("spec") != service.obj.get("spec"):
                service.obj["spec"] = patched["spec"]
                self._spec_changed(service)
            return 200, copy.deepcopy(service.obj)

    def _spec_changed(self, service: _Service) -> None:
        service.obj["metadata"]["generation"] += 1
        service.obj["metadata"]["resourceVersion"] = str(int(service.obj["metadata"]["resourceVersion"]) + 1)
        service.changed_at = time.monotonic()

    # -- the controllers ---------------------------------------------------------------------
    def _reconcile_forever(self) -> None:
        while not self._stop.wait(self.tick_s):
            now = time.monotonic()
            with self._lock:
                for service in self.services.values():
                    self._reconcile(service, now)

    def _reconcile(self, service: _Service, now: float) -> None:
        generation = service.obj["metadata"]["generation"]
        if generation != service.reconciled_generation:
            if now - service.changed_at < self.reconcile_delay_s:
                return  # rule 2: not reconciled yet; the status stays what it was
            self._reconcile_spec(service, now)
            service.reconciled_generation = generation
        self._reconcile_route(service, now)
        self._propagate_status(service, now)

    def _reconcile_spec(self, service: _Service, now: float) -> None:
        spec = service.obj["spec"]
        template = _template(spec)
        if not service.revisions or service.revisions[-1].template != template:  # rule 3
            name = f"{service.name}-predictor-{len(service.revisions) + 1:05d}"
            service.revisions.append(_Revision(name, copy.deepcopy(template), now + self.ready_delay_s))
            service.ksvc_generation += 1
        canary = spec.get("predictor", {}).get("canaryTrafficPercent")
        if canary is not None and service.rolled_out:  # rule 4
            targets = [{"latestRevision": True, "percent": canary}]
            if canary < 100:
                targets.append({"revisionName": service.rolled_out, "latestRevision": False,
                                "percent": 100 - canary, "tag": "prev"})
        else:
            targets = [{"latestRevision": True, "percent": 100}]
        if targets != service.targets:
            service.targets = targets
            service.ksvc_generation += 1

    def _reconcile_route(self, service: _Service, now: float) -> None:
        ready = [r for r in service.revisions if r.ready(now)]
        route = []
        for target in service.targets:  # rule 5
            if target.get("latestRevision"):
                if not ready:
                    service.route_ready = False
                    return  # nothing routable: the route keeps serving what it served
                route.append({**target, "revisionName": ready[-1].name})
            else:
                revision = next((r for r in service.revisions if r.name == target["revisionName"]), None)
                if revision is None or not revision.ready(now):
                    service.route_ready = False
                    return
                route.append(dict(target))
        service.route_ready = True
        if route != service.route:
            service.route = route
            self.timeline.append((now, service.name, self._split(service)))

    def _propagate_status(self, service: _Service, now: float) -> None:
        created = service.revisions[-1].name if service.revisions else ""
        ready = [r.name for r in service.revisions if r.ready(now)]
        latest_ready = ready[-1] if ready else ""
        by_revision: dict[str, int] = {}
        for target in service.route:
            by_revision[target["revisionName"]] = by_revision.get(target["revisionName"], 0) + target["percent"]
        for target in service.route:  # rule 6
            if target["revisionName"] == latest_ready and target.get("latestRevision"):
                if service.rolled_out != latest_ready:
                    if target["percent"] == 100:
                        service.previous_rolled_out, service.rolled_out = service.rolled_out, latest_ready
                elif latest_ready == created and target["percent"] < 100:
                    if by_revision.get(target["revisionName"]) == 100 and service.previous_rolled_out:
                        service.rolled_out = service.previous_rolled_out
        is_ready = bool(created) and created == latest_ready and service.route_ready
        condition = {"type": "Ready", "status": "True" if is_ready else "False",
                     "lastTransitionTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        if not is_ready:
            condition["reason"] = "RevisionMissing" if created != latest_ready else "RouteNotReady"
        service.obj["status"] = {
            "observedGeneration": service.ksvc_generation,
            "conditions": [condition],
            "components": {"predictor": {
                "latestCreatedRevision": created, "latestReadyRevision": latest_ready,
                "latestRolledoutRevision": service.rolled_out, "previousRolledoutRevision": service.previous_rolled_out,
                "traffic": copy.deepcopy(service.route)}}}


def _status(code: int, reason: str, message: str, status: str = "Failure") -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": status, "message": message,
            "reason": reason, "code": code}
