"""Data contracts: what a dataset must look like, as a hand-editable YAML file.

A contract names the columns with their types, nullability and maximum
missing fraction, numeric ranges, allowed category sets, the key that must be
unique, row-count bounds, drift thresholds against a reference profile and
the severity (error or warning) of each family of checks. ``mlops schema
infer`` writes one from a reference dataset (like TFX's SchemaGen) together
with that reference's profile; people then edit it and version it.

Loading is strict: an unknown field, a wrong type or an impossible bound is
refused with the file and the field named.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from mlops.errors import ConfigError, DataError
from mlops.stats.methods import CATEGORICAL, CATEGORICAL_METHODS, NUMERIC, NUMERIC_METHODS
from mlops.stats.profile import Profile

TYPES = ("integer", "float", "string", "category", "boolean", "timestamp")
SEVERITIES = ("error", "warning")
# Families of checks; each can be made an error or a warning in the contract.
CHECK_FAMILIES = ("schema", "rows", "missing", "range", "category", "key", "drift")
DEFAULT_SEVERITY = {family: "error" for family in CHECK_FAMILIES} | {"drift": "warning"}
DEFAULT_DRIFT = {"numeric": {"method": "psi", "threshold": 0.2},
                 "categorical": {"method": "jensenshannon", "threshold": 0.1}}
# Points kept per numeric column in a contract's reference profile: a quantile summary whose CDF is
# within 1/REFERENCE_POINTS of the reference data's, small enough to version beside the contract.
REFERENCE_POINTS = 500
MAX_INFERRED_CATEGORIES = 50


@dataclass
class ColumnSpec:
    name: str
    type: str
    nullable: bool = True
    max_missing: float = 0.0
    min: float | None = None
    max: float | None = None
    values: list[str] | None = None
    drift: dict[str, Any] | None = None  # {"method", "threshold"} or {"enabled": False}

    @property
    def numeric(self) -> bool:
        return self.type in ("integer", "float")

    @property
    def categorical(self) -> bool:
        return self.type in ("category", "boolean")


@dataclass
class Contract:
    dataset: str
    columns: dict[str, ColumnSpec]
    version: int = 1
    description: str = ""
    key: list[str] = field(default_factory=list)
    timestamp: str | None = None
    min_rows: int = 1
    max_rows: int | None = None
    allow_extra_columns: bool = False
    reference_profile: str | None = None
    drift: dict[str, dict[str, Any]] = field(default_factory=lambda: json.loads(json.dumps(DEFAULT_DRIFT)))
    severity: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_SEVERITY))
    path: Path | None = None  # where it was loaded from (resolves reference_profile)

    def drift_rule(self, column: ColumnSpec) -> tuple[str, float] | None:
        """The (method, threshold) for a column's drift check, or None when disabled."""
        if column.type not in ("integer", "float", "category", "boolean"):
            return None
        rule = {**self.drift["numeric" if column.numeric else "categorical"], **(column.drift or {})}
        if rule.get("enabled", True) is False:
            return None
        return rule["method"], float(rule["threshold"])

    def reference_profile_path(self) -> Path | None:
        if not self.reference_profile:
            return None
        base = self.path.parent if self.path else Path.cwd()
        return base / self.reference_profile


# -- loading ------------------------------------------------------------------
_TOP_FIELDS = {"dataset", "version", "description", "key", "timestamp", "rows", "columns", "allow_extra_columns",
               "reference_profile", "drift", "severity"}
_COLUMN_FIELDS = {"type", "nullable", "max_missing", "min", "max", "values", "drift"}


def _fail(where: str, message: str) -> ConfigError:
    return ConfigError(f"{where}: {message}")


def _show(value: Any) -> str:
    """A value for a message: its repr, cut short (a YAML file can hold a 4,000-digit number)."""
    try:
        text = repr(value)
    except ValueError:  # an int too long to print
        return f"an integer of more than {sys.get_int_max_str_digits()} digits"
    return text if len(text) <= 80 else text[:77] + "..."


def _names(keys) -> list[str]:
    """Field names for a message, whatever YAML made of them (strings, numbers, dates, null)."""
    return sorted(map(str, keys))


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(where, f"expected a number, got {_show(value)}")
    try:
        number = float(value)
    except OverflowError:  # an integer beyond any float
        raise _fail(where, f"expected a number, got {_show(value)} (too large)") from None
    if not math.isfinite(number):
        raise _fail(where, f"expected a finite number, got {_show(value)}")
    return number


def _count(value: Any, where: str) -> int:
    """A whole number of rows (1000 or 1000.0; not 1.5, not true)."""
    number = _number(value, where)
    if not number.is_integer():
        raise _fail(where, f"expected a whole number, got {_show(value)}")
    return int(value) if isinstance(value, int) else int(number)


def _mapping(raw: dict, name: str, where: str, expected: str) -> dict:
    """An optional mapping field: absent or empty (null) is {}, anything but a mapping is refused."""
    value = raw.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _fail(f"{where}: {name}", f"expected {expected}, got {_show(value)}")
    return value


# Contracts before validation shared monitoring's statistics named two methods otherwise.
_RENAMED_METHODS = {"jensen_shannon": "jensenshannon", "chi_squared": "chisquare"}


def _drift_rule(raw: Any, where: str, kinds: tuple[str, ...]) -> dict[str, Any]:
    if raw is False:
        return {"enabled": False}
    if not isinstance(raw, dict) or set(raw) - {"method", "threshold", "enabled"}:
        raise _fail(where, "expected a mapping with 'method' and/or 'threshold' (or false to disable)")
    if "method" in raw and raw["method"] not in kinds:
        renamed = _RENAMED_METHODS.get(raw["method"]) if isinstance(raw["method"], str) else None
        hint = f" (renamed to {renamed!r}, monitoring's name)" if renamed in kinds else ""
        raise _fail(where, f"method {_show(raw['method'])} is not one of {list(kinds)}{hint}")
    if "enabled" in raw and not isinstance(raw["enabled"], bool):
        raise _fail(f"{where}.enabled", f"expected true or false, got {_show(raw['enabled'])}")
    if "threshold" in raw:
        threshold = _number(raw["threshold"], f"{where}.threshold")
        if threshold < 0:
            raise _fail(f"{where}.threshold", f"must be >= 0, got {threshold}")
    return dict(raw)


def _column(name: str, raw: Any, where: str) -> ColumnSpec:
    if not isinstance(raw, dict):
        raise _fail(where, f"expected a mapping of column settings, got {type(raw).__name__}")
    unknown = set(raw) - _COLUMN_FIELDS
    if unknown:
        raise _fail(where, f"unknown field(s) {_names(unknown)}; allowed: {sorted(_COLUMN_FIELDS)}")
    if raw.get("type") not in TYPES:
        raise _fail(f"{where}.type", f"must be one of {list(TYPES)}, got {_show(raw.get('type'))}")
    spec = ColumnSpec(name=name, type=raw["type"])
    if "nullable" in raw:
        if not isinstance(raw["nullable"], bool):
            raise _fail(f"{where}.nullable", f"expected true or false, got {raw['nullable']!r}")
        spec.nullable = raw["nullable"]
    if "max_missing" in raw:
        spec.max_missing = _number(raw["max_missing"], f"{where}.max_missing")
        if not 0.0 <= spec.max_missing <= 1.0:
            raise _fail(f"{where}.max_missing", f"must be a fraction in [0, 1], got {spec.max_missing}")
    if not spec.nullable:
        spec.max_missing = 0.0
    for bound in ("min", "max"):
        if raw.get(bound) is not None:
            if not spec.numeric:
                raise _fail(f"{where}.{bound}", f"ranges apply to integer and float columns, not {spec.type}")
            setattr(spec, bound, _number(raw[bound], f"{where}.{bound}"))
    if spec.min is not None and spec.max is not None and spec.min > spec.max:
        raise _fail(where, f"min {spec.min} is greater than max {spec.max}")
    if raw.get("values") is not None:
        if spec.type != "category" or not isinstance(raw["values"], list) or not raw["values"]:
            raise _fail(f"{where}.values", "a non-empty list of allowed values, for category columns only")
        odd = [v for v in raw["values"] if type(v) not in (str, int, float)]
        if odd:  # yes/no/on/off are booleans to YAML, ~ is null: quote them
            raise _fail(f"{where}.values", f"each value must be text or a number (quote yes, no, on, off, ~), "
                                           f"got {_show(odd[0])}")
        spec.values = [str(v) for v in raw["values"]]
    if "drift" in raw:
        kinds = NUMERIC_METHODS if spec.numeric else CATEGORICAL_METHODS
        spec.drift = _drift_rule(raw["drift"], f"{where}.drift", kinds)
    return spec


def parse_contract(raw: Any, where: str = "contract") -> Contract:
    """Build a Contract from parsed YAML, refusing anything unexpected."""
    if not isinstance(raw, dict):
        raise _fail(where, "expected a mapping at the top level")
    unknown = set(raw) - _TOP_FIELDS
    if unknown:
        raise _fail(where, f"unknown field(s) {_names(unknown)}; allowed: {sorted(_TOP_FIELDS)}")
    if not isinstance(raw.get("dataset"), str) or not raw["dataset"]:
        raise _fail(f"{where}: dataset", "a dataset name is required")
    columns_raw = raw.get("columns")
    if not isinstance(columns_raw, dict) or not columns_raw:
        raise _fail(f"{where}: columns", "a non-empty mapping of column name to settings is required")
    odd = [n for n in columns_raw if n is None or isinstance(n, bool)]
    if odd:  # YAML reads an unquoted yes/no/on/off as a boolean and ~ or null as null
        raise _fail(f"{where}: columns", f"column name {_show(odd[0])} is not text; quote it (e.g. 'no')")
    columns = {str(n): _column(str(n), c, f"{where}: columns.{n}") for n, c in columns_raw.items()}
    contract = Contract(dataset=raw["dataset"], columns=columns)
    if "version" in raw:
        if not isinstance(raw["version"], int) or isinstance(raw["version"], bool):
            raise _fail(f"{where}: version", f"expected an integer, got {raw['version']!r}")
        contract.version = raw["version"]
    description = raw.get("description")
    if description is not None and not isinstance(description, str):
        raise _fail(f"{where}: description", f"expected text, got {_show(description)}")
    contract.description = description or ""
    key = raw.get("key", [])
    key = [key] if isinstance(key, str) else key
    if not isinstance(key, list) or any(not isinstance(k, str) or k not in columns for k in key):
        raise _fail(f"{where}: key", f"must list declared columns, got {_show(key)}")
    contract.key = list(key)
    if raw.get("timestamp") is not None:
        timestamp = raw["timestamp"]
        if not isinstance(timestamp, str) or timestamp not in columns or columns[timestamp].type != "timestamp":
            raise _fail(f"{where}: timestamp", f"{_show(timestamp)} must be a declared timestamp column")
        contract.timestamp = timestamp
    rows = _mapping(raw, "rows", where, "a mapping with 'min' and/or 'max'")
    if set(rows) - {"min", "max"}:
        raise _fail(f"{where}: rows", "expected a mapping with 'min' and/or 'max'")
    if "min" in rows:
        contract.min_rows = _count(rows["min"], f"{where}: rows.min")
    if rows.get("max") is not None:
        contract.max_rows = _count(rows["max"], f"{where}: rows.max")
    if contract.min_rows < 0 or (contract.max_rows is not None and contract.max_rows < contract.min_rows):
        raise _fail(f"{where}: rows", f"need 0 <= min <= max, got min {contract.min_rows}, max {contract.max_rows}")
    if "allow_extra_columns" in raw:
        if not isinstance(raw["allow_extra_columns"], bool):
            raise _fail(f"{where}: allow_extra_columns", "expected true or false")
        contract.allow_extra_columns = raw["allow_extra_columns"]
    if raw.get("reference_profile") is not None:
        if not isinstance(raw["reference_profile"], str):
            raise _fail(f"{where}: reference_profile", f"expected a file name, got {_show(raw['reference_profile'])}")
        contract.reference_profile = raw["reference_profile"]
    drift = _mapping(raw, "drift", where, "a mapping with 'numeric' and/or 'categorical'")
    if set(drift) - {"numeric", "categorical"}:
        raise _fail(f"{where}: drift", "expected a mapping with 'numeric' and/or 'categorical'")
    for kind, kinds in (("numeric", NUMERIC_METHODS), ("categorical", CATEGORICAL_METHODS)):
        if kind in drift:
            contract.drift[kind].update(_drift_rule(drift[kind], f"{where}: drift.{kind}", kinds))
    severity = _mapping(raw, "severity", where, "a mapping of check family to error or warning")
    for family, level in severity.items():
        if family not in CHECK_FAMILIES:
            raise _fail(f"{where}: severity.{family}", f"unknown check family; known: {list(CHECK_FAMILIES)}")
        if level not in SEVERITIES:
            raise _fail(f"{where}: severity.{family}", f"must be 'error' or 'warning', got {_show(level)}")
        contract.severity[family] = level
    return contract


def load_contract(path: str | Path) -> Contract:
    """Read and check a contract file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read data contract {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"data contract {path} is not UTF-8 text: byte {exc.start} is "
                          f"{exc.object[exc.start]:#04x}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"data contract {path} is not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    except RecursionError:
        raise ConfigError(f"data contract {path} is not valid YAML: nested too deeply") from None
    except (ValueError, TypeError, AttributeError, OverflowError) as exc:
        # PyYAML's constructors let these through for a malformed tagged or implicit scalar
        # (2020-13-45, !!timestamp x, !!int x): the text is YAML, its values are not.
        raise ConfigError(f"data contract {path} is not valid YAML: a malformed value ({exc})") from None
    contract = parse_contract(raw, str(path))
    contract.path = path
    return contract


# -- inference ------------------------------------------------------------------
def column_type(series: pd.Series) -> str:
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(dtype):
        return "integer"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "timestamp"
    uniques = series.dropna().nunique()
    return "category" if uniques <= MAX_INFERRED_CATEGORIES else "string"


def _rounded(value: float, down: bool) -> float:
    """A readable bound just outside ``value`` (2 significant digits)."""
    if value == 0 or not math.isfinite(value):
        return float(value)
    scale = 10 ** (math.floor(math.log10(abs(value))) - 1)
    return round((math.floor if down else math.ceil)(value / scale) * scale, 12)


def infer_contract(df: pd.DataFrame, dataset: str, key: list[str] | None = None, timestamp: str | None = None,
                   range_factor: float = 2.0) -> Contract:
    """Propose a contract from a reference dataset; people edit it afterwards.

    Numeric ranges are plausibility bounds: the observed range widened by
    ``range_factor`` on each side (a positive minimum divided by it, a
    positive maximum multiplied), loose enough for a bigger sample's tails
    and tight enough to catch a change of units (thousands, cents). Missing
    fractions get headroom (twice the observed, at least 1%); categories are
    the observed set.
    """
    if df.empty:
        raise ConfigError(f"cannot infer a contract for {dataset!r} from an empty dataset")
    if range_factor < 1:
        raise ConfigError(f"range_factor must be >= 1, got {range_factor}")
    for name in [*(key or []), *([timestamp] if timestamp else [])]:
        if name not in df.columns:
            raise ConfigError(f"cannot infer a contract: column {name!r} is not in the reference data "
                              f"(columns: {list(df.columns)})")
    columns = {}
    for name in df.columns:
        series = df[name]
        spec = ColumnSpec(name=str(name), type=column_type(series))
        missing = float(series.isna().mean())
        spec.nullable = missing > 0
        spec.max_missing = 0.0 if missing == 0 else min(1.0, round(max(2 * missing, 0.01), 4))
        if name in (key or []) or name == timestamp:
            spec.nullable, spec.max_missing = False, 0.0
        if spec.numeric and series.notna().any():
            lo, hi = float(series.min()), float(series.max())
            spec.min = _rounded(lo / range_factor if lo > 0 else lo * range_factor, down=True)
            spec.max = _rounded(hi * range_factor if hi > 0 else hi / range_factor, down=False)
            if spec.type == "integer":
                spec.min, spec.max = float(math.floor(spec.min)), float(math.ceil(spec.max))
        if spec.type == "category":
            spec.values = sorted(map(str, series.dropna().unique()))
        columns[str(name)] = spec
    return Contract(dataset=dataset, columns=columns, key=list(key or []), timestamp=timestamp,
                    min_rows=max(1, len(df) // 10), max_rows=len(df) * 100,
                    description=f"Inferred from a reference of {len(df)} rows; review and edit.")


def contract_to_yaml(contract: Contract) -> str:
    """The contract as the hand-editable YAML people keep in the repo."""
    columns = {}
    for name, c in contract.columns.items():
        entry: dict[str, Any] = {"type": c.type, "nullable": c.nullable}
        if c.nullable:
            entry["max_missing"] = c.max_missing
        if c.min is not None:
            entry["min"] = int(c.min) if c.type == "integer" and c.min.is_integer() else c.min
        if c.max is not None:
            entry["max"] = int(c.max) if c.type == "integer" and c.max.is_integer() else c.max
        if c.values is not None:
            entry["values"] = c.values
        if c.drift is not None:
            entry["drift"] = c.drift
        columns[name] = entry
    doc: dict[str, Any] = {"dataset": contract.dataset, "version": contract.version,
                           "description": contract.description}
    if contract.key:
        doc["key"] = contract.key
    if contract.timestamp:
        doc["timestamp"] = contract.timestamp
    doc["rows"] = {"min": contract.min_rows, "max": contract.max_rows}
    doc["allow_extra_columns"] = contract.allow_extra_columns
    if contract.reference_profile:
        doc["reference_profile"] = contract.reference_profile
    doc["drift"] = contract.drift
    doc["severity"] = contract.severity
    doc["columns"] = columns
    header = ("# Data contract (see README, 'Data contract'). Edit freely: types are integer, float, string,\n"
              "# category, boolean, timestamp; severity per check family is error or warning; drift methods:\n"
              f"# numeric {' | '.join(NUMERIC_METHODS)},\n"
              f"# categorical {' | '.join(CATEGORICAL_METHODS)} (ks, chisquare and z are p-values).\n")
    body = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100)
    if any(ch in body for ch in "\x85\u2028\u2029"):  # PyYAML writes these raw, then reads them as line breaks
        body = yaml.safe_dump(doc, sort_keys=False, allow_unicode=False, width=100)
    return header + body


# -- reference profiles -------------------------------------------------------
def drift_kinds(contract: Contract) -> dict[str, str]:
    """The drift-checked columns and how each is summarised (numeric or categorical)."""
    return {name: NUMERIC if spec.numeric else CATEGORICAL for name, spec in contract.columns.items()
            if contract.drift_rule(spec) is not None}


def reference_profile(df: pd.DataFrame, contract: Contract) -> Profile:
    """Profile the reference dataset for the contract's drift checks (the statistics monitoring uses)."""
    kinds = {name: kind for name, kind in drift_kinds(contract).items() if name in df.columns}
    return Profile.of_frame(df, kinds, metadata={"rows": len(df), "dataset": contract.dataset},
                            max_points=REFERENCE_POINTS, source="the reference data")


def load_reference_profile(contract: Contract) -> Profile | None:
    """The contract's reference profile, its columns' kinds checked against the contract's types."""
    path = contract.reference_profile_path()
    if path is None:
        return None
    try:
        profile = Profile.load(path)
    except DataError as exc:
        raise ConfigError(f"contract {contract.path}: {exc}; rewrite it from the reference data with "
                          f"`mlops schema profile --contract {contract.path} --data REFERENCE`") from None
    expected = drift_kinds(contract)
    wrong = {name: kind for name, kind in profile.kinds().items() if name in expected and expected[name] != kind}
    if wrong:
        raise ConfigError(f"reference profile {path} summarises {sorted(wrong)} as {sorted(set(wrong.values()))}, "
                          f"but contract {contract.path} types them otherwise: rewrite the profile from the "
                          "reference data (mlops schema profile)")
    return profile


# -- where contracts live ---------------------------------------------------
def resolve_contract(ref: str, cache_dir: Path, store=None) -> Contract:
    """Load a contract from a local path (a project's contracts/...) or an s3:// URI.

    An s3:// contract's reference profile is fetched from beside it.
    """
    from mlops.platform.config_files import fetch_companion, resolve_config_file

    path = resolve_config_file(ref, "data contract", cache_dir, store)
    contract = load_contract(path)
    if ref.startswith("s3://") and contract.reference_profile:
        fetch_companion(ref, contract.reference_profile, path, store)
    return contract


def write_contract_files(contract: Contract, reference: pd.DataFrame, path: Path) -> tuple[Path, Path]:
    """Write the contract YAML and its reference profile (``<name>.profile.json``) beside it."""
    profile_path = path.with_name(path.stem + ".profile.json")
    contract.reference_profile = profile_path.name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(contract_to_yaml(contract))
    reference_profile(reference, contract).save(profile_path)
    return path, profile_path
