"""Validate a dataset against its data contract and the reference profile.

One streaming pass over the Parquet file, batch by batch: memory stays
bounded by the larger of the batch and the file's row group (plus 8 bytes
per row for key hashes), however many rows there are. Every check runs and every failure is collected; each
finding carries its check family's severity from the contract, and the
batch passes when no finding is an error.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mlops.errors import DataError
from mlops.platform.datasets import ROW_GROUP_ROWS
from mlops.stats.methods import METHODS
from mlops.stats.summaries import CategoricalSummary, NumericSummary
from mlops.validation.contract import ColumnSpec, Contract, load_reference_profile

# Streaming unit. pyarrow decodes a whole row group even for a smaller batch, so
# memory is bounded by max(BATCH_ROWS, the file's row group size); our writers
# use ROW_GROUP_ROWS, files from elsewhere may have larger groups.
BATCH_ROWS = ROW_GROUP_ROWS
_EXAMPLES = 5


@dataclass
class Finding:
    """One thing wrong with the batch, named after the check that found it."""

    check: str  # e.g. "range.below_min"; the part before the dot is its family
    severity: str
    column: str | None
    message: str
    observed: Any = None
    expected: Any = None

    @property
    def family(self) -> str:
        return self.check.split(".", 1)[0]


@dataclass
class ColumnSummary:
    name: str
    type: str  # the contract's type
    arrow_type: str | None
    rows: int = 0
    missing: int = 0
    minimum: float | None = None
    maximum: float | None = None
    top: dict[str, int] = field(default_factory=dict)
    drift_method: str | None = None
    drift_value: float | None = None
    drift_threshold: float | None = None
    drifted: bool = False

    @property
    def missing_fraction(self) -> float:
        return self.missing / self.rows if self.rows else 0.0


@dataclass
class ValidationResult:
    dataset: str
    contract_version: int
    source: str
    rows: int
    findings: list[Finding]
    columns: dict[str, ColumnSummary]
    # Summaries of the batch and the reference for the drift-checked columns, for plots (not serialised).
    profiles: dict[str, Any] = field(default_factory=dict, repr=False)
    reference: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def passed(self) -> bool:
        return not self.errors

    def summary(self, limit: int = 8) -> str:
        """One paragraph a person reads first: verdict, then the errors."""
        head = (f"{self.source}: {'PASSED' if self.passed else 'FAILED'} against contract {self.dataset} "
                f"v{self.contract_version} ({self.rows} rows; {len(self.errors)} errors, {len(self.warnings)} warnings)")
        lines = [f"  - {f.check} [{f.column or '*'}]: {f.message}" for f in (self.errors or self.warnings)[:limit]]
        more = len(self.errors or self.warnings) - limit
        return "\n".join([head, *lines, *([f"  ... and {more} more"] if more > 0 else [])])

    def to_json(self) -> dict:
        return {"dataset": self.dataset, "contract_version": self.contract_version, "source": self.source,
                "rows": self.rows, "passed": self.passed,
                "errors": len(self.errors), "warnings": len(self.warnings),
                "findings": [asdict(f) for f in self.findings],
                "columns": {n: asdict(c) | {"missing_fraction": c.missing_fraction} for n, c in self.columns.items()}}

    def write_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=2, default=_json_default))


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    return str(value)


# -- type checks from the Parquet schema ----------------------------------------
def _type_matches(spec: ColumnSpec, arrow_type: pa.DataType) -> bool:
    if pa.types.is_null(arrow_type):  # no values were ever written: no type to contradict
        return True
    if spec.type == "integer":
        return pa.types.is_integer(arrow_type)
    if spec.type == "float":
        return pa.types.is_floating(arrow_type) or pa.types.is_integer(arrow_type)
    if spec.type in ("string", "category"):
        return (pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)
                or pa.types.is_dictionary(arrow_type))
    if spec.type == "boolean":
        return pa.types.is_boolean(arrow_type)
    return pa.types.is_timestamp(arrow_type) or pa.types.is_date(arrow_type)


class _ColumnAccumulator:
    """Everything one column's checks need, folded in batch by batch.

    ``summary`` is kept only where there is a reference to compare with (a
    numeric summary sorts its values: no cost for columns nobody checks);
    category counts always, for the allowed-set check and the report.
    """

    def __init__(self, spec: ColumnSpec, reference: Any | None) -> None:
        self.spec = spec
        self.rows = self.missing = 0
        self.below = self.above = 0
        self.below_examples: list[float] = []
        self.above_examples: list[float] = []
        self.minimum, self.maximum = float("inf"), float("-inf")
        self.summary: Any = None
        self.summarise = spec.numeric and reference is not None
        if spec.categorical:
            self.summary = CategoricalSummary()

    def add(self, column: pa.ChunkedArray | pa.Array) -> None:
        self.rows += len(column)
        self.missing += column.null_count
        if self.spec.numeric:
            values = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
            self.missing += int(np.isnan(values).sum()) - column.null_count  # NaN counts as missing too
            present = values[~np.isnan(values)]
            if present.size:
                self.minimum, self.maximum = min(self.minimum, present.min()), max(self.maximum, present.max())
            if self.summarise:
                # Exact per batch, compressed once when merged in: one compression per batch, not two.
                part = NumericSummary.of(values, max_points=None, integer=pa.types.is_integer(column.type))
                self.summary = part if self.summary is None else self.summary.merge(part)
            if self.spec.min is not None:
                low = present[present < self.spec.min]
                self.below += low.size
                self.below_examples = (self.below_examples + np.sort(low)[:_EXAMPLES].tolist())[:_EXAMPLES]
            if self.spec.max is not None:
                high = present[present > self.spec.max]
                self.above += high.size
                self.above_examples = (self.above_examples + np.sort(high)[::-1][:_EXAMPLES].tolist())[:_EXAMPLES]
        elif self.summary is not None:
            # Keys as str(value), the way a reference profile names them (True, not Arrow's "true").
            counts = pc.value_counts(column)
            self.summary.add_counts({str(v.as_py()): c.as_py() for v, c in zip(counts.field("values"),
                                                                             counts.field("counts")) if v.is_valid},
                                    column.null_count)


def validate_parquet(path: str | Path, contract: Contract, source: str | None = None) -> ValidationResult:
    """Check the Parquet file at ``path`` against ``contract``; collect every finding."""
    path = Path(path)
    source = source or str(path)
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"cannot read {source} as Parquet: {exc}") from None
    schema = parquet.schema_arrow
    rows = parquet.metadata.num_rows
    reference = load_reference_profile(contract)
    ref_profiles = reference.features if reference else {}
    severity = contract.severity
    findings: list[Finding] = []

    def find(check: str, column: str | None, message: str, observed=None, expected=None) -> None:
        findings.append(Finding(check, severity[check.split(".")[0]], column, message, observed, expected))

    # Schema: missing and extra columns, types (from the file's schema, no data read).
    present = {name: schema.field(name).type for name in schema.names}
    summaries = {n: ColumnSummary(n, s.type, str(present[n]) if n in present else None)
                 for n, s in contract.columns.items()}
    for name, spec in contract.columns.items():
        if name not in present:
            find("schema.missing_column", name, f"column {name!r} ({spec.type}) is missing", None, spec.type)
        elif not _type_matches(spec, present[name]):
            find("schema.type", name, f"column {name!r} has type {present[name]}, the contract says {spec.type}",
                 str(present[name]), spec.type)
    extra = [n for n in present if n not in contract.columns]
    if extra and not contract.allow_extra_columns:
        for name in extra:
            find("schema.extra_column", name, f"column {name!r} is not in the contract", str(present[name]), None)

    # Rows.
    if rows == 0:
        find("rows.empty", None, "the batch is empty (0 rows)", 0, f">= {contract.min_rows}")
    elif rows < contract.min_rows or (contract.max_rows is not None and rows > contract.max_rows):
        find("rows.count", None, f"{rows} rows is outside the contract's bounds "
             f"[{contract.min_rows}, {contract.max_rows if contract.max_rows is not None else 'inf'}]",
             rows, [contract.min_rows, contract.max_rows])

    # One streaming pass over the columns whose type is right.
    checked = [n for n, s in contract.columns.items() if n in present and _type_matches(s, present[n])]
    accumulators = {n: _ColumnAccumulator(contract.columns[n], ref_profiles.get(n)) for n in checked}
    key_hashes: list[np.ndarray] = []
    key_ok = bool(contract.key) and all(k in checked for k in contract.key)
    for batch in (parquet.iter_batches(batch_size=BATCH_ROWS, columns=checked) if checked else []):
        for name in checked:
            accumulators[name].add(batch.column(name))
        if key_ok:
            keys = pd.DataFrame({k: batch.column(k).to_pandas() for k in contract.key})
            key_hashes.append(pd.util.hash_pandas_object(keys, index=False).to_numpy())

    for name, acc in accumulators.items():
        spec, summary = acc.spec, summaries[name]
        summary.rows, summary.missing = acc.rows, acc.missing
        fraction = acc.missing / acc.rows if acc.rows else 0.0
        if acc.rows and acc.missing == acc.rows:
            find("missing.all_null", name, f"column {name!r} is entirely null ({acc.rows} rows): a broken feed?",
                 1.0, spec.max_missing)
        elif not spec.nullable and acc.missing:
            find("missing.not_nullable", name, f"column {name!r} must not be null but has {acc.missing} missing "
                 f"values ({fraction:.2%})", fraction, 0.0)
        elif fraction > spec.max_missing:
            find("missing.fraction", name, f"column {name!r} is {fraction:.2%} missing, above the contract's "
                 f"{spec.max_missing:.2%}", round(fraction, 6), spec.max_missing)
        if spec.numeric:
            if acc.minimum <= acc.maximum:
                summary.minimum, summary.maximum = float(acc.minimum), float(acc.maximum)
            if acc.below:
                find("range.below_min", name, f"{acc.below} values of {name!r} are below the minimum {spec.min:g} "
                     f"(lowest: {', '.join(f'{v:g}' for v in acc.below_examples)}): wrong units?",
                     acc.below, spec.min)
            if acc.above:
                find("range.above_max", name, f"{acc.above} values of {name!r} are above the maximum {spec.max:g} "
                     f"(highest: {', '.join(f'{v:g}' for v in acc.above_examples)}): wrong units?",
                     acc.above, spec.max)
        elif acc.summary is not None:
            counts = acc.summary.counts
            summary.top = dict(sorted(counts.items(), key=lambda kv: -kv[1])[:10])
            if spec.values is not None:
                unknown = {k: v for k, v in counts.items() if k not in spec.values}
                if unknown:
                    shown = ", ".join(f"{k!r} ({v})" for k, v in sorted(unknown.items(), key=lambda kv: -kv[1])[:_EXAMPLES])
                    find("category.unknown", name, f"{sum(unknown.values())} values of {name!r} are not in its allowed "
                         f"set: {shown}", sorted(unknown), spec.values)
        _check_drift(contract, spec, acc.summary, ref_profiles.get(name), summary, find)

    if key_ok and key_hashes:
        hashes = np.concatenate(key_hashes)
        _, counts = np.unique(hashes, return_counts=True)
        duplicated = int((counts[counts > 1] - 1).sum())
        if duplicated:
            find("key.duplicate", ",".join(contract.key), f"{duplicated} rows repeat a key "
                 f"({'+'.join(contract.key)}) that must be unique", duplicated, 0)

    profiles = {n: a.summary for n, a in accumulators.items() if a.summary is not None and n in ref_profiles}
    return ValidationResult(contract.dataset, contract.version, source, rows, findings, summaries,
                            profiles, ref_profiles)


def _check_drift(contract, spec, current, reference, summary, find) -> None:
    rule = contract.drift_rule(spec)
    if rule is None or reference is None or current is None or not current.count or not reference.count:
        return
    name, threshold = rule
    method = METHODS[name]
    value = method.compute(reference, current)
    summary.drift_method, summary.drift_value, summary.drift_threshold = name, value, threshold
    summary.drifted = method.drifted(value, threshold)
    if summary.drifted:
        relation = "below" if method.is_p_value else "above"
        find("drift.distribution", spec.name, f"{spec.name!r} drifted from the reference: {method.label} = "
             f"{value:.4g}, {relation} the threshold {threshold:g}", round(value, 6), threshold)
