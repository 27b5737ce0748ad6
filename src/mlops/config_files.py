"""Where a declared config (a data contract, a gate) comes from: the package, a path, or S3.

Pipelines take such configs as a string parameter, so one rule resolves it
everywhere: a bare name is a file shipped in the package (and so in the
component image), anything with a slash or a .yaml suffix is a local path,
and an s3:// URI is fetched (checksum-verified) into a local cache.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlops.errors import ConfigError


def resolve_config_file(ref: str, packaged_dir: Path, what: str, cache_dir: Path, store=None) -> Path:
    """A local path for ``ref`` (fetched into ``cache_dir`` when it is an s3:// URI)."""
    if "/" not in ref and not ref.endswith((".yaml", ".yml")):
        path = packaged_dir / f"{ref}.yaml"
        if not path.is_file():
            known = sorted(p.stem for p in packaged_dir.glob("*.yaml"))
            raise ConfigError(f"no packaged {what} named {ref!r}; known: {known} "
                              f"(or pass a path or an s3:// URI to a {what} file)")
        return path
    if not ref.startswith("s3://"):
        return Path(ref)
    from mlops.storage import ObjectStore, parse_s3_uri

    store = store or ObjectStore.from_env()
    bucket, key = parse_s3_uri(ref)
    local = Path(cache_dir) / Path(key).name
    store.get_file(key, local, bucket)
    return local


def fetch_companion(ref: str, name: str, local_config: Path, store=None) -> None:
    """Fetch ``name`` from beside an s3:// config into the folder of its local copy."""
    from mlops.storage import ObjectStore, join_key, parse_s3_uri

    store = store or ObjectStore.from_env()
    bucket, key = parse_s3_uri(ref)
    store.get_file(join_key(str(Path(key).parent), name), local_config.parent / name, bucket)


def read_yaml(path: str | Path, what: str):
    """The parsed YAML at ``path``; an unreadable or malformed file is a ConfigError naming it."""
    import yaml

    path = Path(path)
    try:
        return yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} {path} is not valid YAML: {exc}") from None


def mapping(raw: Any, where: str, allowed: set[str], required: set[str] = frozenset()) -> dict:
    """``raw`` as a mapping with only ``allowed`` keys and every ``required`` one, else a ConfigError."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a mapping, got {type(raw).__name__}")
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")
    missing = sorted(required - set(raw))
    if missing:
        raise ConfigError(f"{where}: missing {missing}")
    return raw


def number(raw: Any, where: str, low: float, high: float = float("inf")) -> float:
    """``raw`` as a float in [low, high] (a bool is not a number), else a ConfigError."""
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not low <= raw <= high:
        raise ConfigError(f"{where} must be a number in [{low:g}, {high:g}], got {raw!r}")
    return float(raw)
