"""Where a declared config file (a data contract, a rollout policy) comes from: a path, or S3.

A project names its own files; a caller may name another one instead, so
one rule resolves such a reference everywhere: an s3:// URI is fetched
(checksum-verified) into a local cache, anything else is a local path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlops.errors import ConfigError


def resolve_config_file(ref: str, what: str, cache_dir: Path, store=None) -> Path:
    """A local path for ``ref`` (fetched into ``cache_dir`` when it is an s3:// URI)."""
    if not isinstance(ref, str) or not ref.strip():
        raise ConfigError(f"a {what} must be named by a file path or an s3:// URI, got {ref!r}")
    if not ref.startswith("s3://"):
        path = Path(ref)
        if not path.is_file():
            raise ConfigError(f"{what} {ref} does not exist (name a file, or an s3:// URI)")
        return path
    from mlops.platform.storage import ObjectStore, parse_s3_uri

    store = store or ObjectStore.from_env()
    bucket, key = parse_s3_uri(ref)
    local = Path(cache_dir) / Path(key).name
    store.get_file(key, local, bucket)
    return local


def fetch_companion(ref: str, name: str, local_config: Path, store=None) -> None:
    """Fetch ``name`` from beside an s3:// config into the folder of its local copy."""
    from mlops.platform.storage import ObjectStore, join_key, parse_s3_uri

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
