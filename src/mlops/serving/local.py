"""`mlops serve`: the serving topology of a cluster, as local processes on 127.0.0.1.

    caller -> transformer (features, request log, shadow) -> splitter -> predictor vN (stable)
                                                                      -> predictor vM (canary)

One predictor process per deployed model version (the local counterpart of a
KServe predictor revision), the splitter in place of the cluster's ingress
split, and the transformer in front. State (pids, ports, routes) lives in
``$MLOPS_HOME/serving/<model>/state.json`` so later commands (`mlops
rollout`, `mlops serve down`) find the same processes.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from dataclasses import asdict
from pathlib import Path

from mlops.errors import ServingError
from mlops.platform.local import HOST, free_ports, port_is_free, state_dir
from mlops.platform.processes import Service, http_ok, start_process, stop_processes, wait_until_ready

DEFAULT_TRANSFORMER_PORT = 8080
READY_TIMEOUT_S = 120.0
DRAIN_S = 2.0  # after traffic leaves a version, requests already routed to it finish before it stops


class LocalServing:
    """The serving processes of one project's model (``names.model``) on this machine."""

    def __init__(self, project, home: Path | None = None) -> None:
        self.project = project
        self.model_name = project.names.model
        self.home = (Path(home) if home else state_dir()).resolve()
        self.dir = self.home / "serving" / self.model_name

    # -- state ------------------------------------------------------------------------
    @property
    def state_file(self) -> Path:
        return self.dir / "state.json"

    def _load(self) -> dict:
        if not self.state_file.is_file():
            return {"predictors": {}, "routes": []}
        data = json.loads(self.state_file.read_text())
        for key in ("transformer", "splitter"):
            if data.get(key):
                data[key] = Service(**data[key])
        data["predictors"] = {v: Service(**s) for v, s in data.get("predictors", {}).items()}
        return data

    def _save(self, state: dict) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        out = {k: (asdict(v) if isinstance(v, Service) else v) for k, v in state.items() if k != "predictors"}
        out["predictors"] = {v: asdict(s) for v, s in state["predictors"].items()}
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(out, indent=2))
        tmp.replace(self.state_file)

    def _alive(self, service: Service | None) -> bool:
        return service is not None and service.process() is not None

    # -- processes ----------------------------------------------------------------------
    def _python(self, module: str, *args: str) -> list[str]:
        return [sys.executable, "-m", module, *args]

    def _launch(self, name: str, cmd: list[str], url: str, ready_path: str) -> Service:
        # The servers find the platform and the feature store through MLOPS_HOME, whatever their cwd.
        service = start_process(name, cmd, url, self.dir / "logs", cwd=self.dir,
                                extra_env={"MLOPS_HOME": str(self.home)})
        try:
            wait_until_ready(service, lambda: http_ok(url + ready_path), READY_TIMEOUT_S, ServingError)
        except ServingError:
            stop_processes([service])
            raise
        return service

    def deploy(self, version: str) -> str:
        """Start a predictor for ``version`` (a number) unless one runs; returns its URL."""
        state = self._load()
        running = state["predictors"].get(version)
        if self._alive(running):
            return running.url
        port = free_ports(["p"])["p"]
        url = f"http://{HOST}:{port}"
        service = self._launch(f"predictor-v{version}",
                               self._python("mlops.serving.predictor", "--project", str(self.project.root),
                                            "--model-version", version, "--host", HOST, "--http-port", str(port),
                                            "--cache-dir", str(self.dir / "models")),
                               url, f"/v2/models/{self.model_name}/ready")
        state = self._load()
        state["predictors"][version] = service
        self._save(state)
        return url

    def retire(self, version: str) -> None:
        """Stop the predictor of ``version``; refuses while a route still sends it traffic."""
        state = self._load()
        if any(r["version"] == version and r["weight"] > 0 for r in state["routes"]):
            raise ServingError(f"v{version} still receives traffic; route it away before retiring it")
        service = state["predictors"].pop(version, None)
        if service is not None:
            if self._alive(service):
                time.sleep(DRAIN_S)  # as Knative drains a revision: no caller sees its connection refused
            stop_processes([service])
        self._save(state)

    def set_routes(self, weights: dict[str, int], faults: dict[str, dict] | None = None) -> list[dict]:
        """Point the splitter at the deployed versions with these percent weights."""
        state = self._load()
        missing = [v for v in weights if not self._alive(state["predictors"].get(v))]
        if missing:
            raise ServingError(f"no running predictor for v{', v'.join(missing)}; deploy it first")
        routes = [{"version": v, "url": state["predictors"][v].url, "weight": w, "fault": (faults or {}).get(v, {})}
                  for v, w in weights.items()]
        if self._alive(state.get("splitter")):
            request = urllib.request.Request(state["splitter"].url + "/splitter/routes", method="PUT",
                                             data=json.dumps({"routes": routes}).encode(),
                                             headers={"content-type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=5):  # noqa: S310 (loopback)
                    pass
            except OSError as exc:
                raise ServingError(f"the splitter refused the routes {weights}: {exc}") from None
        state["routes"] = routes
        self._save(state)
        return routes

    # -- the whole topology --------------------------------------------------------------------
    def up(self, version: str, port: int = DEFAULT_TRANSFORMER_PORT, request_log: bool = True,
           progress=print) -> dict[str, str]:
        """Serve ``version`` (a number) behind the splitter and transformer; idempotent."""
        state = self._load()
        if self._alive(state.get("transformer")):
            progress(f"already serving {self.model_name} at {state['transformer'].url}")
            return self.urls()
        if not port_is_free(port):
            raise ServingError(f"port {port} on {HOST} is busy; choose another with --port")
        progress(f"starting predictor v{version}")
        predictor_url = self.deploy(version)
        state = self._load()
        routes = [{"version": version, "url": predictor_url, "weight": 100, "fault": {}}]
        if not self._alive(state.get("splitter")):
            split_port = free_ports(["s"])["s"]
            progress("starting the traffic splitter")
            state["splitter"] = self._launch("splitter", self._python(
                "mlops.serving.splitter", "--host", HOST, "--http-port", str(split_port),
                "--routes", json.dumps({"routes": routes})), f"http://{HOST}:{split_port}", "/splitter/health")
        state["routes"] = routes
        self._save(state)
        progress(f"starting the transformer on {HOST}:{port}")
        args = ["--project", str(self.project.root), "--predictor-url", state["splitter"].url, "--host", HOST,
                "--http-port", str(port)] + ([] if request_log else ["--no-request-log"])
        state["transformer"] = self._launch("transformer", self._python("mlops.serving.transformer", *args),
                                            f"http://{HOST}:{port}", f"/v2/models/{self.model_name}/ready")
        self._save(state)
        return self.urls()

    def urls(self) -> dict[str, str]:
        state = self._load()
        out = {f"predictor v{v}": s.url for v, s in state["predictors"].items() if self._alive(s)}
        for key in ("splitter", "transformer"):
            if self._alive(state.get(key)):
                out[key] = state[key].url
        return out

    def status(self) -> dict:
        state = self._load()
        return {"urls": self.urls(), "routes": [{k: r[k] for k in ("version", "weight", "fault")}
                                                for r in state["routes"]]}

    def down(self) -> list[str]:
        state = self._load()
        services = [*state["predictors"].values(), state.get("splitter"), state.get("transformer")]
        stopped = stop_processes([s for s in services if s is not None])
        if self.state_file.exists():
            self.state_file.unlink()
        return stopped
