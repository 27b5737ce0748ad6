"""What the benchmark scripts in bench/ share: RESULTS.md, progress lines, the machine description.

The scripts are run as ``.venv/bin/python bench/<script>.py`` and import this file as the
top-level module ``common`` (each puts bench/ on ``sys.path`` first). It imports nothing but
the standard library at the top: bench_validation.py's worker imports it in Great
Expectations' own venv, where neither the suite nor psutil is installed.
"""

from __future__ import annotations

import os
import platform
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
RESULTS_TITLE = "# Benchmarks"


def progress(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def machine() -> dict[str, str]:
    """Platform, CPUs (logical, physical, usable by this process), memory and Python version."""
    import psutil

    cpus_logical = os.cpu_count()
    cpus_physical = psutil.cpu_count(logical=False)
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = cpus_logical
    cpu = f"{cpus_logical} logical CPUs" + (f" ({cpus_physical} physical)" if cpus_physical else "")
    if usable != cpus_logical:
        cpu += f", {usable} usable by this process"
    return {"platform": platform.platform(), "cpu": cpu,
            "memory": f"{psutil.virtual_memory().total / 2**30:.1f} GiB", "python": platform.python_version()}


def write_results(section: str, heading: str) -> None:
    """Replace the ``heading`` section of RESULTS.md with ``section``, keeping every other section.

    ``heading`` is the benchmark's ``## ...`` line; ``section`` its full text, starting with that line.
    A section runs to the next ``## `` line; without one for ``heading``, ``section`` is appended.
    """
    if RESULTS.exists():
        text = RESULTS.read_text()
    else:
        text = (f"{RESULTS_TITLE}\n\nMeasured numbers from the scripts in `bench/` (`make bench`). "
                "Each benchmark owns one `##` section and rewrites only that section when it runs.\n")
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == heading), None)
    if start is None:
        new = text.rstrip("\n") + "\n\n" + section
    else:
        end = next((j for j in range(start + 1, len(lines)) if lines[j].startswith("## ")), len(lines))
        before = "\n".join(lines[:start]).rstrip("\n")
        after = "\n".join(lines[end:])
        new = before + "\n\n" + section + ("\n" + after if after else "")
    RESULTS.write_text(new.rstrip("\n") + "\n")


@contextmanager
def work_dir(prefix: str, keep: bool, what: str) -> Iterator[Path]:
    """A temporary folder for one benchmark run, removed afterwards unless ``keep``."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield work
    finally:
        if keep:
            progress(f"kept the benchmark's {what}: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


# The settings through which a user's platform or shell could leak into a benchmark's own.
PLATFORM_VARS = ("MLOPS_S3_ENDPOINT", "MLOPS_BUCKET", "MLFLOW_TRACKING_URI", "AWS_ACCESS_KEY_ID",
                 "AWS_SECRET_ACCESS_KEY")


def start_private_platform(cleanup, prefix: str, keep: bool, clear_vars: tuple[str, ...] = ()) -> tuple[Path, dict]:
    """Start a local platform of the benchmark's own in a fresh MLOPS_HOME, on free ports.

    Its settings replace any in os.environ (``clear_vars`` are dropped too);
    ``cleanup`` (an ExitStack) stops it and removes the directory unless ``keep``.
    Returns the directory and the ports.
    """
    from mlops.local_platform import DEFAULT_PORTS, LocalPlatform, free_ports

    home = Path(tempfile.mkdtemp(prefix=prefix))
    for var in (*PLATFORM_VARS, *clear_vars, *(f"MLOPS_PORT_{n.upper()}" for n in DEFAULT_PORTS)):
        os.environ.pop(var, None)
    os.environ["MLOPS_HOME"] = str(home)
    ports = free_ports(DEFAULT_PORTS)
    plat = LocalPlatform(home=home, ports=ports, bucket="mlops")
    if keep:
        cleanup.callback(progress, f"kept the benchmark's MLOPS_HOME: {home}")
    else:
        cleanup.callback(shutil.rmtree, home, ignore_errors=True)
    cleanup.callback(lambda: plat.down(progress=lambda msg: progress(f"platform {msg}")))
    progress(f"starting a private local platform in {home} (S3 port {ports['s3']}, MLflow port {ports['mlflow']})")
    os.environ.update(plat.up(progress=progress))
    return home, ports
