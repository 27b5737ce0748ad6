"""Every lock of the suite is a closed resolution, and every environment is installed from one
without pip resolving anything again (scripts/lockcheck.py; issue 14).

The suite's own environment is read as installed (exact, offline); the benchmark-only and
lock-tool locks, not installed here, are read from the package index's files for their hashes.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "lockcheck.py"
sys.path.insert(0, str(SCRIPT.parent))
import lockcheck  # noqa: E402
import locked_venv  # noqa: E402

sys.path.remove(str(SCRIPT.parent))

MAIN_LOCK, MAIN_ROOTS = ROOT / "requirements.lock", ROOT / "requirements.in"
# Locks no environment of this test run is built from: read from the index.
SIDE_LOCKS = [
    (ROOT / "bench" / "gx-requirements.lock", ROOT / "bench" / "gx-requirements.txt"),
    (ROOT / "bench" / "evidently-requirements.lock", ROOT / "bench" / "evidently-requirements.txt"),
    (ROOT / "tests" / "schemathesis-requirements.lock", ROOT / "tests" / "schemathesis-requirements.txt"),
    (ROOT / "scripts" / "lock-tools.lock", ROOT / "scripts" / "lock-tools.in"),
]


def entry(lock_text: str, name: str) -> str:
    """One package's entry of a lock: its pin, hashes and 'via' comments."""
    found = re.search(rf"^{re.escape(name)}==.*?(?=^\S)", lock_text, flags=re.MULTILINE | re.DOTALL)
    assert found, f"{name} is not pinned in the lock"
    return found.group(0)


def without(lock_text: str, name: str) -> str:
    """The lock with one package's entry (its pin, hashes and 'via' comments) taken out."""
    planted, count = re.subn(rf"^{re.escape(name)}==.*?(?=^\S)", "", lock_text, flags=re.MULTILINE | re.DOTALL)
    assert count == 1, f"{name} is not pinned in the lock"
    return planted


def repinned(lock_text: str, name: str, version: str) -> str:
    planted, count = re.subn(rf"^{re.escape(name)}==\S+", f"{name}=={version}", lock_text, flags=re.MULTILINE)
    assert count == 1, f"{name} is not pinned in the lock"
    return planted


def plant(tmp_path: Path, text: str, name: str = "requirements.lock") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# -- the real locks --------------------------------------------------------------------------

def test_the_suite_environment_is_exactly_its_closed_lock():
    report = lockcheck.check_installed(MAIN_LOCK, MAIN_ROOTS)
    assert report.problems == []
    pins = lockcheck.read_lock(MAIN_LOCK)
    # Read through its extras: feast[duckdb,redis] and uvicorn[standard] among them.
    assert report.checked > len(pins) and report.requirements > 2 * len(pins)


@pytest.mark.parametrize("lock, roots", SIDE_LOCKS, ids=[lock.name for lock, _ in SIDE_LOCKS])
def test_the_locks_of_the_side_environments_are_closed(lock, roots):
    # Pins shared with the suite's environment are read from it; the rest from the index.
    report = lockcheck.check_index(lock, roots, reuse=sys.executable)
    assert report.problems == []
    assert report.checked >= len(lockcheck.read_lock(lock))


def test_every_install_from_a_lock_resolves_nothing_and_is_checked_after():
    """Where an environment is built from a lock, pip takes it as it stands and the result is proven whole."""
    makefile = (ROOT / "Makefile").read_text()
    dockerfile = (ROOT / "Dockerfile").read_text()
    side_envs = (ROOT / "scripts" / "locked_venv.py").read_text()
    for where, text in [("Makefile", makefile), ("Dockerfile", dockerfile)]:
        installs = re.findall(r"pip install [^\n]*-r \S*lock\S*", text)
        assert installs, where
        for command in installs:
            assert "--no-deps" in command and "--require-hashes" in command, f"{where}: {command}"
        assert "pip check" in text and "lockcheck.py installed" in text, where
    assert '"--require-hashes", "--no-deps", "-r", str(lock)]' in side_envs
    assert '[*pip, "check"]' in side_envs and 'str(LOCKCHECK), "installed"' in side_envs


# -- planted faults: what the check exists to catch ---------------------------------------------

def test_a_lock_that_lacks_one_extras_package_is_caught(tmp_path):
    # httptools is in the lock only because feast asks uvicorn for its 'standard' extra; pip
    # check does not look at extras one package asks of another, so it would pass this lock.
    planted = plant(tmp_path, without(MAIN_LOCK.read_text(), "httptools"))
    problems = lockcheck.check_installed(planted, MAIN_ROOTS).problems
    assert [p for p in problems if p.startswith("uvicorn==0.54.0 [standard] requires httptools")
            and p.endswith("but the lock has no httptools")], problems
    assert len(problems) == 1, problems


def test_a_lock_that_pins_a_version_outside_a_requirement_is_caught(tmp_path):
    planted = plant(tmp_path, repinned(MAIN_LOCK.read_text(), "uvicorn", "0.20.0"))
    problems = lockcheck.check_installed(planted, MAIN_ROOTS).problems
    assert "feast==0.67.0 requires uvicorn[standard]>=0.30.6 but the lock pins uvicorn==0.20.0 " \
           f"({planted}:{_line_of(planted, 'uvicorn==0.20.0')})" in problems, problems
    # ... and the environment no longer is the lock.
    assert any("uvicorn==0.20.0" in p and "0.54.0 installed" in p for p in problems), problems


def test_a_lock_outside_its_own_direct_requirements_is_caught(tmp_path):
    planted = plant(tmp_path, repinned(MAIN_LOCK.read_text(), "pyarrow", "26.0.0"))
    report = lockcheck.check_closure(lockcheck.read_lock(planted), lockcheck.read_roots(MAIN_ROOTS),
                                     lambda pin: [])
    assert report.problems == [f"{MAIN_ROOTS}:{_line_of(MAIN_ROOTS, 'pyarrow')} requires pyarrow<26,>=21 "
                               f"but the lock pins pyarrow==26.0.0 ({planted}:{_line_of(planted, 'pyarrow==')})"]


def test_a_side_lock_missing_a_package_is_caught_from_the_index(tmp_path):
    lock, roots = SIDE_LOCKS[0]
    planted = plant(tmp_path, without(lock.read_text(), "tzlocal"), lock.name)
    problems = lockcheck.check_index(planted, roots, reuse=sys.executable).problems
    assert problems and all("but the lock has no tzlocal" in p for p in problems), problems
    assert any(p.startswith("great-expectations==1.24.1 requires tzlocal") for p in problems), problems


def _line_of(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if line.startswith(text))


# -- the closure rules, on a lock of its own ------------------------------------------------------

ENV_311 = {**lockcheck.default_environment(), "python_version": "3.11", "python_full_version": "3.11.7"}


def closure(tmp_path, pins: dict[str, str], requires: dict[str, list[str]], roots: list[str]):
    lock = plant(tmp_path, "".join(f"{name}=={version} --hash=sha256:{'0' * 64}\n" for name, version in pins.items()))
    roots_file = plant(tmp_path, "\n".join(roots) + "\n", "requirements.in")
    return lockcheck.check_closure(lockcheck.read_lock(lock), lockcheck.read_roots(roots_file),
                                   lambda pin: requires.get(pin.name, []), ENV_311)


def test_extras_apply_only_when_asked_and_carry_on_to_what_they_ask(tmp_path):
    requires = {
        "app": ["web[fast]>=2", "slow-thing; extra == 'slow'", "backport; python_version < '3.10'"],
        "web": ["h11", "speedups[native]; extra == 'fast'"],
        "speedups": ["compiler>=3; extra == 'native'"],
    }
    report = closure(tmp_path, {"app": "1", "web": "2.1", "h11": "1", "speedups": "1", "compiler": "2"},
                     requires, ["app"])
    # slow-thing (extra not asked) and backport (marker false on 3.11) are not needed.
    assert report.problems == ["speedups==1 [native] requires compiler>=3; extra == \"native\" but the lock "
                               f"pins compiler==2 ({tmp_path / 'requirements.lock'}:5)"]
    report = closure(tmp_path, {"app": "1", "web": "2.1", "h11": "1", "speedups": "1", "compiler": "3",
                                "stale": "1"}, requires, ["app"])
    assert report.problems == [] and report.unreached == ["stale==1"]


def test_a_locked_package_nothing_reaches_still_has_its_requirements_checked(tmp_path):
    report = closure(tmp_path, {"app": "1", "extra-tool": "1"}, {"extra-tool": ["missing-dep"]}, ["app"])
    assert report.problems == ["extra-tool==1 requires missing-dep but the lock has no missing-dep"]


def test_metadata_that_cannot_be_had_is_a_problem_not_a_pass(tmp_path):
    lock = plant(tmp_path, f"app==1 --hash=sha256:{'0' * 64}\n")
    report = lockcheck.check_closure(lockcheck.read_lock(lock), [], lambda pin: "not installed in /nowhere")
    assert report.problems == [f"app==1 ({lock}:1): cannot read its requirements: not installed in /nowhere"]


# -- bad input ------------------------------------------------------------------------------------

HASH = f"--hash=sha256:{'a' * 64}"


@pytest.mark.parametrize("text, message", [
    (f"numpy>=2 {HASH}\n", "numpy>=2' is not pinned to one version with '=='"),
    (f"numpy==2.* {HASH}\n", "is not pinned to one version"),
    ("numpy==2.4.6\n", "has no --hash=sha256:...; pip --require-hashes would refuse it"),
    (f"numpy==2.4.6 {HASH}\nNumPy==2.4.6 {HASH}\n", "lock:2: numpy is pinned twice (also at"),
    (f"-e . {HASH}\n", "options such as '-e' do not belong in a lock"),
    (f"numpy==2.4.6 \\\n    --index-url=https://x {HASH}\n", "unexpected option --index-url=https://x"),
    ("what is this\n", "lock:1: not a requirement: 'what is this'"),
    ("# only comments\n", "no pinned requirement in it"),
])
def test_a_malformed_lock_is_refused_with_where_and_why(tmp_path, text, message):
    with pytest.raises(lockcheck.LockError, match=re.escape(message)):
        lockcheck.read_lock(plant(tmp_path, text, "lock"))


def test_a_missing_file_is_refused_by_name(tmp_path):
    with pytest.raises(lockcheck.LockError, match=re.escape(f"{tmp_path / 'nope.lock'}: cannot read")):
        lockcheck.read_lock(tmp_path / "nope.lock")
    with pytest.raises(lockcheck.LockError, match="options such as '-r' are not supported"):
        lockcheck.read_roots(plant(tmp_path, "-r other.in\n", "requirements.in"))


def test_the_command_line_says_closed_open_or_bad_input(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True)

    ok = run("installed", MAIN_LOCK, "--roots", MAIN_ROOTS)
    assert ok.returncode == 0 and "requirements.lock is closed" in ok.stdout, ok.stderr
    broken = run("installed", plant(tmp_path, without(MAIN_LOCK.read_text(), "httptools")), "--roots", MAIN_ROOTS)
    assert broken.returncode == 1 and "is not a closed lock (1 problems)" in broken.stderr
    assert "but the lock has no httptools" in broken.stderr
    bad = run("installed", plant(tmp_path, "garbage here\n", "bad.lock"))
    assert bad.returncode == 2 and "bad.lock:1: not a requirement" in bad.stderr


# -- building a venv from a lock -------------------------------------------------------------------

def test_a_venv_is_built_exactly_from_its_lock_and_reused(tmp_path):
    lock = plant(tmp_path, entry(MAIN_LOCK.read_text(), "packaging"), "tool.lock")
    roots = plant(tmp_path, "packaging==26.4\n", "tool.in")
    python, built = locked_venv.ensure(tmp_path / "venv", lock, roots, "test", progress=lambda _: None)
    assert built
    version = subprocess.run([str(python), "-c", "import packaging; print(packaging.__version__)"],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert version == "26.4"
    assert locked_venv.ensure(tmp_path / "venv", lock, roots, "test", progress=lambda _: None) == (python, False)


def test_a_venv_from_a_lock_that_is_not_closed_fails_and_leaves_no_stamp(tmp_path):
    # python-dateutil without six: pip installs it (no deps), pip check then refuses it.
    text = MAIN_LOCK.read_text()
    lock = plant(tmp_path, entry(text, "python-dateutil"), "tool.lock")
    roots = plant(tmp_path, "python-dateutil\n", "tool.in")
    with pytest.raises(locked_venv.LockedVenvError, match="(?s)pip --disable-pip-version-check check` exited with 1"
                                                          ".*python-dateutil 2.9.0.post0 requires six"):
        locked_venv.ensure(tmp_path / "venv", lock, roots, "test", progress=lambda _: None)
    assert not (tmp_path / "venv" / locked_venv.STAMP).exists()
    # uvicorn[standard] without httptools: pip check passes it, lockcheck does not.
    names = ["uvicorn", "click", "h11", "python-dotenv", "pyyaml", "uvloop", "watchfiles", "anyio", "idna",
             "websockets", "typing-extensions"]
    lock = plant(tmp_path, "".join(entry(text, name) for name in names), "tool.lock")
    roots = plant(tmp_path, "uvicorn[standard]\n", "tool.in")
    with pytest.raises(locked_venv.LockedVenvError, match="(?s)lockcheck.py installed.* exited with 1.*"
                                                          "requires httptools.*but the lock has no httptools"):
        locked_venv.ensure(tmp_path / "venv", lock, roots, "test", progress=lambda _: None)
    assert not (tmp_path / "venv" / locked_venv.STAMP).exists()


def test_a_missing_lock_says_how_to_make_it(tmp_path):
    with pytest.raises(locked_venv.LockedVenvError, match="tool.lock is missing: run `make lock`"):
        locked_venv.ensure(tmp_path / "venv", tmp_path / "tool.lock", tmp_path / "tool.in", "test")
