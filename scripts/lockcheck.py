#!/usr/bin/env python3
"""Prove that a hash-pinned lock file is a whole resolution: its closure.

Every environment of the suite is installed from its lock with ``pip install --no-deps``
(pip must resolve nothing against the index: it would take whatever was published since the
lock was made). That is only safe when the lock is closed: starting from the direct
requirements (``requirements.in``) and from every locked package, each requirement that
applies on the target platform, extras included and with their markers evaluated, must name a
locked package at a version inside the requirement's range. ``pip check`` cannot tell: it
ignores the extras one package asks of another (feast's ``uvicorn[standard]``).

Where the packages' metadata comes from:

``installed``  the environment the lock was installed into (the running interpreter, or
               ``--python``): exact and offline; also checks each pin is installed as locked.
``index``      the wheels the lock's hashes name, read from the package index's PEP 658
               metadata files (hash-verified, cached): for a lock not installed yet.

Exit status 0 when the lock is closed, 1 with one line per problem when it is not, 2 when
the input itself is bad (a malformed lock, an unreachable index).

Only the standard library and ``packaging`` (locked in every environment) are used.
"""

from __future__ import annotations

import argparse
import email.parser
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import threading
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.tags import sys_tags
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version


class LockError(Exception):
    """The input cannot be checked: a malformed lock or roots file, or metadata that cannot be had."""


@dataclass(frozen=True)
class Pin:
    name: str            # canonical
    version: Version
    hashes: frozenset[str]  # sha256 hex digests
    where: str           # "file:line", for messages

    def __str__(self) -> str:
        return f"{self.name}=={self.version}"


@dataclass(frozen=True)
class Root:
    requirement: Requirement
    where: str


# -- reading the files -------------------------------------------------------------------


def _logical_lines(path: Path) -> Iterable[tuple[int, str]]:
    """Lines with ``\\`` continuations joined and comments dropped, each with its first line number."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise LockError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    buffer, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not buffer:
            start = number
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        buffer += line
        if buffer.strip():
            yield start, buffer.strip()
        buffer = ""
    if buffer.strip():
        yield start, buffer.strip()


def read_lock(path: Path, environment: dict[str, str] | None = None) -> dict[str, Pin]:
    """Parse a ``pip --require-hashes`` lock: ``name==version --hash=sha256:...`` per entry.

    Entries whose marker is false for ``environment`` are left out, as pip would.
    """
    environment = environment or default_environment()
    pins: dict[str, Pin] = {}
    for number, line in _logical_lines(Path(path)):
        where = f"{path}:{number}"
        spec, *options = (part.strip() for part in line.split(" --"))
        if spec.startswith("-"):
            raise LockError(f"{where}: options such as {spec.split()[0]!r} do not belong in a lock; "
                            f"every line must be one pinned requirement with its hashes")
        try:
            requirement = Requirement(spec)
        except InvalidRequirement as exc:
            raise LockError(f"{where}: not a requirement: {spec!r} ({exc})") from exc
        if requirement.marker is not None and not requirement.marker.evaluate(environment):
            continue
        specifiers = list(requirement.specifier)
        if len(specifiers) != 1 or specifiers[0].operator != "==" or "*" in specifiers[0].version:
            raise LockError(f"{where}: {spec!r} is not pinned to one version with '=='")
        hashes = {opt.split("=", 1)[1].removeprefix("sha256:") for opt in options
                  if opt.startswith("hash=sha256:")}
        unknown = [opt for opt in options if not opt.startswith("hash=")]
        if unknown:
            raise LockError(f"{where}: unexpected option --{unknown[0]} after {spec!r}")
        if not hashes:
            raise LockError(f"{where}: {spec!r} has no --hash=sha256:...; pip --require-hashes would refuse it")
        name = canonicalize_name(requirement.name)
        if name in pins:
            raise LockError(f"{where}: {name} is pinned twice (also at {pins[name].where})")
        try:
            version = Version(specifiers[0].version)
        except InvalidVersion as exc:
            raise LockError(f"{where}: {spec!r} pins an invalid version") from exc
        pins[name] = Pin(name, version, frozenset(hashes), where)
    if not pins:
        raise LockError(f"{path}: no pinned requirement in it")
    return pins


def read_roots(path: Path) -> list[Root]:
    """The direct requirements a lock was compiled from (``requirements.in``)."""
    roots = []
    for number, line in _logical_lines(Path(path)):
        where = f"{path}:{number}"
        if line.startswith("-"):
            raise LockError(f"{where}: options such as {line.split()[0]!r} are not supported in a roots file")
        try:
            roots.append(Root(Requirement(line), where))
        except InvalidRequirement as exc:
            raise LockError(f"{where}: not a requirement: {line!r} ({exc})") from exc
    return roots


# -- the check ---------------------------------------------------------------------------

# What a metadata source answers for a pin: its Requires-Dist lines, or a reason it has none.
RequiresOf = Callable[[Pin], "list[str] | str"]


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    checked: int = 0        # (package, extras) pairs whose requirements were read
    requirements: int = 0   # requirements that applied and were checked
    # Pins nothing reaches here. Not a fault: a lock for "3.11" also serves 3.11.0, where
    # redis still needs async-timeout (python_full_version < '3.11.3').
    unreached: list[str] = field(default_factory=list)


def check_closure(pins: dict[str, Pin], roots: list[Root], requires_of: RequiresOf,
                  environment: dict[str, str] | None = None) -> Report:
    """Every requirement reachable from ``roots`` and from every pin is locked, inside its range."""
    environment = dict(environment or default_environment())
    report = Report()
    reached: set[str] = set()
    queue: list[tuple[str, frozenset[str]]] = []
    done: set[tuple[str, frozenset[str]]] = set()

    def need(requirement: Requirement, required_by: str, extras: frozenset[str]) -> None:
        if requirement.marker is not None and not any(
                requirement.marker.evaluate({**environment, "extra": extra}) for extra in ("", *sorted(extras))):
            return
        report.requirements += 1
        name = canonicalize_name(requirement.name)
        pin = pins.get(name)
        if pin is None:
            report.problems.append(f"{required_by} requires {requirement} but the lock has no {name}")
            return
        if not requirement.specifier.contains(pin.version, prereleases=True):
            report.problems.append(f"{required_by} requires {requirement} but the lock pins {pin} ({pin.where})")
        reached.add(name)
        queue.append((name, frozenset(canonicalize_name(extra) for extra in requirement.extras)))

    for root in roots:
        need(root.requirement, root.where, frozenset())
    # Every pin is read with no extras too, so a package nothing reaches still has its own
    # requirements checked (pip installs it all the same).
    queue.extend((name, frozenset()) for name in pins)
    while queue:
        name, extras = queue.pop()
        if (name, extras) in done:
            continue
        done.add((name, extras))
        pin = pins[name]
        answer = requires_of(pin)
        if isinstance(answer, str):
            report.problems.append(f"{pin} ({pin.where}): cannot read its requirements: {answer}")
            continue
        report.checked += 1
        label = f"{pin}" + (f" [{','.join(sorted(extras))}]" if extras else "")
        for line in answer:
            try:
                requirement = Requirement(line)
            except InvalidRequirement:
                report.problems.append(f"{label}: unreadable requirement in its metadata: {line!r}")
                continue
            need(requirement, label, extras)
    if roots:
        report.unreached = [str(pins[name]) for name in sorted(set(pins) - reached)]
    return report


# -- metadata from an installed environment ------------------------------------------------

# Run inside the target interpreter: standard library only, prints what the check needs.
_INTROSPECT = r"""
import importlib.metadata as m, json, os, platform, sys
impl = sys.implementation
version = "{0.major}.{0.minor}.{0.micro}".format(impl.version)
if impl.version.releaselevel != "final":
    version += impl.version.releaselevel[0] + str(impl.version.serial)
environment = {
    "implementation_name": impl.name, "implementation_version": version,
    "os_name": os.name, "platform_machine": platform.machine(), "platform_release": platform.release(),
    "platform_system": platform.system(), "platform_version": platform.version(),
    "python_full_version": platform.python_version(), "platform_python_implementation": platform.python_implementation(),
    "python_version": ".".join(platform.python_version_tuple()[:2]), "sys_platform": sys.platform,
}
dists = {}
for dist in m.distributions():
    name = dist.metadata["Name"]
    if name and name not in dists:  # the first on sys.path wins, as for imports
        dists[name] = {"version": dist.version, "requires": dist.requires or []}
print(json.dumps({"environment": environment, "distributions": dists, "prefix": sys.prefix}))
"""


def installed_environment(python: str | None = None) -> tuple[dict[str, str], dict[str, dict], str]:
    """The marker environment and distributions of ``python`` (default: this interpreter)."""
    try:
        out = subprocess.run([python or sys.executable, "-c", _INTROSPECT], check=True,
                             capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise LockError(f"cannot read the environment of {python or sys.executable}: "
                        f"{getattr(exc, 'stderr', None) or exc}") from exc
    data = json.loads(out)
    dists = {canonicalize_name(name): info for name, info in data["distributions"].items()}
    return data["environment"], dists, data["prefix"]


def installed_requires(dists: dict[str, dict], prefix: str) -> RequiresOf:
    def requires_of(pin: Pin) -> list[str] | str:
        info = dists.get(pin.name)
        if info is None:
            return f"not installed in {prefix}"
        if Version(info["version"]) != pin.version:
            return f"{prefix} has {pin.name} {info['version']} installed, not the locked {pin.version}"
        return info["requires"]
    return requires_of


# -- metadata from the package index (PEP 691 JSON pages, PEP 658 metadata files) -----------

DEFAULT_INDEX = "https://pypi.org/simple"
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mlops-lockcheck"


def _get(url: str, accept: str | None = None) -> bytes:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    for attempt in range(3):
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.read()
        except urllib.error.HTTPError as exc:
            if exc.code < 500 or attempt == 2:
                raise LockError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            if attempt == 2:
                raise LockError(f"{url}: {getattr(exc, 'reason', exc)}") from exc
    raise AssertionError("unreachable")


def index_requires(index: str = DEFAULT_INDEX, cache: Path = DEFAULT_CACHE) -> RequiresOf:
    """Requires-Dist of the wheel the pin's hashes name, preferring one this platform installs.

    Read from the index's PEP 658 metadata file where it publishes one (checked against the
    hash it gives), else from the wheel itself (downloaded and checked against the locked
    hash). Cached under the wheel's sha256: a locked hash names its content for good.
    """
    supported = {str(tag): rank for rank, tag in enumerate(sys_tags())}
    cache.mkdir(parents=True, exist_ok=True)

    def requires_of(pin: Pin) -> list[str] | str:
        for digest in pin.hashes:
            cached = cache / f"{digest}.json"
            if cached.exists():
                return json.loads(cached.read_text())
        page_url = f"{index.rstrip('/')}/{pin.name}/"
        try:
            page = json.loads(_get(page_url, "application/vnd.pypi.simple.v1+json"))
        except json.JSONDecodeError as exc:
            raise LockError(f"{page_url}: not a PEP 691 JSON page; the index must serve "
                            f"application/vnd.pypi.simple.v1+json") from exc
        candidates = []
        for file in page.get("files", []):
            digest, filename = file.get("hashes", {}).get("sha256"), file["filename"]
            if digest not in pin.hashes:
                continue
            metadata = file.get("core-metadata") or file.get("dist-info-metadata")
            metadata_digest = metadata.get("sha256") if isinstance(metadata, dict) else None
            url = urllib.parse.urljoin(page_url, file["url"]).split("#", 1)[0]
            if filename.endswith(".whl"):
                try:
                    _, version, _, tags = parse_wheel_filename(filename)
                except InvalidWheelFilename:
                    continue
                rank = min((supported.get(str(tag), len(supported)) for tag in tags), default=len(supported))
            elif filename.endswith((".tar.gz", ".zip")):
                version, rank = pin.version, len(supported) + 1  # an sdist only where no wheel is locked
            else:
                continue
            if version == pin.version:
                # Prefer a wheel this platform installs, then one with a metadata file (no download).
                candidates.append((rank, metadata_digest is None, filename, digest, url, metadata_digest))
        if not candidates:
            return f"the index {index} has no file of {pin} among the lock's {len(pin.hashes)} hashes"
        _, _, filename, digest, url, metadata_digest = min(candidates)
        if metadata_digest:
            body = _get(url + ".metadata")
            if hashlib.sha256(body).hexdigest() != metadata_digest:
                return f"the metadata file of {filename} does not match the hash the index publishes for it"
        else:
            archive = _get(url)
            if hashlib.sha256(archive).hexdigest() != digest:
                return f"{filename} as downloaded does not match its locked hash sha256:{digest}"
            body = _archive_metadata(archive, filename)
            if body is None:
                return f"{filename} has no metadata file (.dist-info/METADATA, or PKG-INFO of Metadata-Version 2.2+)"
        requires = email.parser.BytesParser().parsebytes(body, headersonly=True).get_all("Requires-Dist") or []
        cached = cache / f"{digest}.json"
        tmp = cached.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(requires))
        tmp.replace(cached)
        return requires
    return requires_of


def _archive_metadata(archive: bytes, filename: str) -> bytes | None:
    """A wheel's .dist-info/METADATA, or an sdist's top-level PKG-INFO.

    An sdist's PKG-INFO is what its build backend recorded when the sdist was made; from
    Metadata-Version 2.2 on (PEP 643) it lists Requires-Dist, and setuptools marks it dynamic
    only because setup.py could compute it. Older PKG-INFO files do not list requirements.
    """
    if filename.endswith(".whl") or filename.endswith(".zip"):
        with zipfile.ZipFile(io.BytesIO(archive)) as files:
            names = files.namelist()
            wanted = ([n for n in names if n.count("/") == 1 and n.split("/")[0].endswith(".dist-info")
                       and n.endswith("/METADATA")] if filename.endswith(".whl")
                      else [n for n in names if n.count("/") == 1 and n.endswith("/PKG-INFO")])
            body = files.read(wanted[0]) if wanted else None
    else:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as files:
            member = next((m for m in files.getmembers() if m.name.count("/") == 1 and m.name.endswith("/PKG-INFO")), None)
            body = files.extractfile(member).read() if member else None
    if body is not None and not filename.endswith(".whl"):
        version = email.parser.BytesParser().parsebytes(body, headersonly=True).get("Metadata-Version", "1.0")
        if Version(version) < Version("2.2"):
            return None
    return body


def layered(*sources: RequiresOf) -> RequiresOf:
    """The first source that has the pin's metadata answers; otherwise the last one's reason."""
    def requires_of(pin: Pin) -> list[str] | str:
        answer: list[str] | str = "no metadata source"
        for source in sources:
            answer = source(pin)
            if not isinstance(answer, str):
                return answer
        return answer
    return requires_of


def prefetch(pins: dict[str, Pin], requires_of: RequiresOf, workers: int = 16) -> RequiresOf:
    """Ask for every pin's metadata at once (the index answers slowly, one page at a time)."""
    with ThreadPoolExecutor(workers) as pool:
        answers = dict(zip(pins, pool.map(requires_of, pins.values())))
    return lambda pin: answers[pin.name]


# -- command line ------------------------------------------------------------------------


def check_installed(lock: Path, roots: Path | None, python: str | None = None) -> Report:
    environment, dists, prefix = installed_environment(python)
    pins = read_lock(lock, environment)
    report = check_closure(pins, read_roots(roots) if roots else [], installed_requires(dists, prefix), environment)
    for pin in pins.values():
        info = dists.get(pin.name)
        if info is None or Version(info["version"]) != pin.version:
            found = "not installed" if info is None else f"{info['version']} installed"
            report.problems.insert(0, f"{pin} ({pin.where}) is locked but {found} in {prefix}")
    return report


def check_index(lock: Path, roots: Path | None, index: str = DEFAULT_INDEX, cache: Path = DEFAULT_CACHE,
                reuse: str | None = None) -> Report:
    """The closure from the index's metadata; ``reuse``: an environment read first where it has the locked version."""
    pins = read_lock(lock)
    sources = [index_requires(index, cache)]
    if reuse:
        _, dists, prefix = installed_environment(reuse)
        sources.insert(0, installed_requires(dists, prefix))
    return check_closure(pins, read_roots(roots) if roots else [], prefetch(pins, layered(*sources)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", choices=["installed", "index"], help="where the packages' metadata comes from")
    parser.add_argument("lock", type=Path)
    parser.add_argument("--roots", type=Path, help="the direct requirements the lock was compiled from")
    parser.add_argument("--python", help="installed: the environment's interpreter (default: this one)")
    parser.add_argument("--index", default=os.environ.get("PIP_INDEX_URL", DEFAULT_INDEX),
                        help="index: a PEP 691 simple index (default: $PIP_INDEX_URL or PyPI)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="index: where metadata is cached")
    parser.add_argument("--reuse", metavar="PYTHON",
                        help="index: read the metadata of this environment first where it has the locked version")
    args = parser.parse_args(argv)
    try:
        report = (check_installed(args.lock, args.roots, args.python) if args.source == "installed"
                  else check_index(args.lock, args.roots, args.index, args.cache, args.reuse))
    except LockError as exc:
        print(f"lockcheck: error: {exc}", file=sys.stderr)
        return 2
    if report.problems:
        print(f"lockcheck: {args.lock} is not a closed lock ({len(report.problems)} problems):", file=sys.stderr)
        for problem in report.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    print(f"lockcheck: {args.lock} is closed: {report.requirements} requirements of "
          f"{report.checked} packages and extras, all locked and in range ({args.source} metadata)")
    if report.unreached:
        print(f"lockcheck: not required on this platform (kept for other {sys.version_info.major}."
              f"{sys.version_info.minor} releases or platforms): {', '.join(report.unreached)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
