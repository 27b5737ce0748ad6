"""`mlops platform up | status | down` with real servers on free 127.0.0.1 ports."""

import os
import socket
import subprocess
import sys

import psutil
import pytest

from mlops.errors import PlatformError
from mlops.platform.local import DEFAULT_PORTS, LocalPlatform, configured_ports, free_ports, load_platform_env

pytestmark = pytest.mark.platform


def test_up_is_idempotent_and_status_reports_running(platform):
    before = {name: svc.pid for name, svc in platform.services().items()}
    env = platform.up(progress=lambda *_: None)
    assert {name: svc.pid for name, svc in platform.services().items()} == before
    assert env["MLOPS_S3_ENDPOINT"] == f"http://127.0.0.1:{platform.ports['s3']}"
    status = platform.status()
    assert status["s3"]["running"] and status["mlflow"]["running"]


def test_state_and_credentials_are_private_and_local(platform):
    env_file = platform.home / "platform.env"
    assert oct(env_file.stat().st_mode & 0o777) == "0o600"
    assert oct((platform.home / "credentials.json").stat().st_mode & 0o777) == "0o600"
    assert (platform.home / "s3").is_dir() and (platform.home / "mlflow" / "mlflow.db").is_file()


def test_every_listening_socket_is_on_loopback(platform):
    pids = set()
    for svc in platform.services().values():
        proc = psutil.Process(svc.pid)
        pids |= {proc.pid, *(c.pid for c in proc.children(recursive=True))}
    listening = [c for c in psutil.net_connections("inet") if c.status == psutil.CONN_LISTEN and c.pid in pids]
    assert listening, "the platform should be listening"
    assert {c.laddr.ip for c in listening} == {"127.0.0.1"}
    assert {c.laddr.port for c in listening} <= set(platform.ports.values())


def test_full_lifecycle_stops_exactly_what_it_started(tmp_path, monkeypatch):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(key, raising=False)
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    plat = LocalPlatform(home=tmp_path, ports=free_ports(DEFAULT_PORTS))
    try:
        plat.up(progress=lambda *_: None)
        procs = [psutil.Process(s.pid) for s in plat.services().values()]
        children = [c for p in procs for c in p.children(recursive=True)]
        assert all(p.is_running() for p in procs)
        assert plat.down(progress=lambda *_: None) == ["mlflow", "s3"]
        gone, alive = psutil.wait_procs(procs + children, timeout=5)
        assert not alive
        assert bystander.poll() is None, "down must not touch processes it did not start"
        assert not plat.env_file.exists() and not plat.state_file.exists()
        assert plat.down(progress=lambda *_: None) == []  # nothing left to stop
    finally:
        plat.down(progress=lambda *_: None)
        bystander.kill()


def test_busy_port_gives_one_clear_error_and_starts_nothing(tmp_path):
    ports = free_ports(DEFAULT_PORTS)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", ports["mlflow"]))
        squatter.listen()
        plat = LocalPlatform(home=tmp_path, ports=ports)
        with pytest.raises(PlatformError) as info:
            plat.up(progress=lambda *_: None)
    assert f"{ports['mlflow']} (mlflow)" in str(info.value) and "MLOPS_PORT_" in str(info.value)
    assert plat.services() == {}


def test_missing_binary_gives_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_WEED_BIN", str(tmp_path / "no-such-weed"))
    plat = LocalPlatform(home=tmp_path, ports=free_ports(DEFAULT_PORTS))
    with pytest.raises(PlatformError, match="SeaweedFS binary `weed` was not found"):
        plat.up(progress=lambda *_: None)
    assert plat.services() == {}


def test_ports_are_configurable_and_checked(monkeypatch):
    monkeypatch.setenv("MLOPS_PORT_S3", "9100")
    assert configured_ports()["s3"] == 9100
    monkeypatch.setenv("MLOPS_PORT_MLFLOW", "http")
    with pytest.raises(PlatformError, match="MLOPS_PORT_MLFLOW='http' is not a TCP port"):
        configured_ports()
    monkeypatch.setenv("MLOPS_PORT_MLFLOW", "9100")
    with pytest.raises(PlatformError, match="must differ"):
        configured_ports()


def test_env_file_never_overrides_explicit_environment(tmp_path, monkeypatch):
    (tmp_path / "platform.env").write_text("MLOPS_BUCKET=from-file\nMLOPS_TEST_ONLY_VAR=loaded\n")
    monkeypatch.setenv("MLOPS_BUCKET", "explicit")
    monkeypatch.delenv("MLOPS_TEST_ONLY_VAR", raising=False)
    loaded = load_platform_env(tmp_path)
    assert os.environ["MLOPS_BUCKET"] == "explicit" and loaded == {"MLOPS_TEST_ONLY_VAR": "loaded"}
    monkeypatch.delenv("MLOPS_TEST_ONLY_VAR")


def test_cli_status_exit_code_reflects_state(platform, tmp_path):
    run = lambda home: subprocess.run([sys.executable, "-m", "mlops.cli", "platform", "status"],
                                      env={**os.environ, "MLOPS_HOME": str(home)}, capture_output=True, text=True)
    up = run(platform.home)
    assert up.returncode == 0 and "s3      running" in up.stdout and "mlflow  running" in up.stdout
    down = run(tmp_path)
    assert down.returncode == 1 and "stopped" in down.stdout
