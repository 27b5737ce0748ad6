"""Build (or reuse) a virtualenv that is exactly one lock: for the tools kept apart from the suite.

Great Expectations and Evidently (the benchmarks' anchors) and schemathesis (the tests' OpenAPI
fuzzer) cannot share the suite's environment: their requirements conflict with it. Each gets a
venv of its own, built the way the suite's is (see the Makefile): ``pip install --no-deps
--require-hashes`` from its lock, so nothing is resolved against the index, then ``pip check``
and ``lockcheck.py`` to prove the set whole. The venv is reused while a stamp in it names the
same lock digest; a failed build leaves no stamp, so the next call starts over.

Standard library only: the caller's interpreter runs it, and the checker runs lockcheck.py.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

LOCKCHECK = Path(__file__).resolve().parent / "lockcheck.py"
STAMP = ".installed-from"
_PIP_NOISE = "is ignored: it is neither a file nor a directory"  # this machine's pip.conf, not the build


class LockedVenvError(Exception):
    """The venv could not be built; the message names the step and pip's own last lines."""


def ensure(venv: Path, lock: Path, roots: Path, label: str, *, checker: str | None = None,
           progress: Callable[[str], None] = print) -> tuple[Path, bool]:
    """The venv's python, and whether it was built now (False: reused).

    ``checker`` is an interpreter with ``packaging`` that runs lockcheck.py against the new
    venv (default: the one running this).
    """
    python = venv / "bin" / "python"
    if not lock.exists():
        raise LockedVenvError(f"{lock} is missing: run `make lock` to make it from {roots}")
    stamp = f"{lock.name} sha256:{hashlib.sha256(lock.read_bytes()).hexdigest()}"
    stamp_file = venv / STAMP
    if python.exists() and stamp_file.exists() and stamp_file.read_text().strip() == stamp:
        return python, False
    progress(f"building the {label} environment {venv} from {lock} (once) ...")
    shutil.rmtree(venv, ignore_errors=True)
    base = getattr(sys, "_base_executable", None) or sys.executable
    pip = [str(python), "-m", "pip", "--disable-pip-version-check"]
    for cmd in ([base, "-m", "venv", str(venv)],
                [*pip, "install", "--quiet", "--require-hashes", "--no-deps", "-r", str(lock)],
                [*pip, "check"],
                [checker or sys.executable, str(LOCKCHECK), "installed", str(lock), "--roots", str(roots),
                 "--python", str(python)]):
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            lines = [ln for ln in (done.stderr + done.stdout).splitlines() if ln.strip() and _PIP_NOISE not in ln]
            raise LockedVenvError(f"`{' '.join(cmd)}` exited with {done.returncode}: " + "\n".join(lines[-15:]))
    # Keep the environment out of version control, as virtualenv and uv do.
    (venv / ".gitignore").write_text(f"# the {label} environment, built by scripts/locked_venv.py\n*\n")
    stamp_file.write_text(stamp + "\n")
    return python, True
