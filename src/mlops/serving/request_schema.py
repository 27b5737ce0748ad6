"""Inference requests checked against the model's signature, for V1 and V2 alike.

Every field the signature names is required in every instance (``null`` is
a missing value, which the model handles), unknown fields are refused,
numbers must be JSON numbers (not strings, not booleans) and text must be
text. All problems of a request are collected (up to a few) so one answer
tells the caller everything to fix.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlops.errors import BadRequest

NUMERIC_TYPES = frozenset({"double", "float", "long", "integer"})
TEXT_TYPES = frozenset({"string"})
V2_NUMERIC = frozenset({"FP64", "FP32", "FP16", "INT64", "INT32", "INT16", "INT8",
                        "UINT64", "UINT32", "UINT16", "UINT8"})
V2_TEXT = frozenset({"BYTES"})
MAX_PROBLEMS = 10


def _describe(value: object) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:40] + '...' if len(text) > 40 else text}"


class _Problems:
    def __init__(self) -> None:
        self.items: list[str] = []
        self.more = 0

    def add(self, text: str) -> None:
        if len(self.items) < MAX_PROBLEMS:
            self.items.append(text)
        else:
            self.more += 1

    def raise_if_any(self, what: str) -> None:
        if self.items:
            tail = f"; and {self.more} more" if self.more else ""
            raise BadRequest(f"{what}: " + "; ".join(self.items) + tail)


@dataclass(frozen=True)
class RequestSchema:
    """The input columns a model declares, and the limit on rows per request."""

    columns: tuple[tuple[str, str], ...]
    max_rows: int = 10_000

    def __post_init__(self) -> None:
        unsupported = [f"{n} ({t})" for n, t in self.columns if t not in NUMERIC_TYPES | TEXT_TYPES]
        if unsupported:
            raise ValueError(f"signature columns of unsupported type: {', '.join(unsupported)}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(n for n, _ in self.columns)

    # -- V1: {"instances": [{...}, ...]} or rows of values in signature order --------------
    def from_v1(self, body: object) -> pd.DataFrame:
        if not isinstance(body, Mapping):
            raise BadRequest(f"a V1 request body must be a JSON object with \"instances\", got {type(body).__name__}")
        if "instances" not in body:
            extra = f" (found keys: {', '.join(sorted(map(str, body))[:8])})" if body else ""
            raise BadRequest(f"a V1 request needs \"instances\": a list of objects with the fields "
                             f"{', '.join(self.names)}{extra}")
        instances = body["instances"]
        if not isinstance(instances, list) or not instances:
            raise BadRequest("\"instances\" must be a non-empty list")
        self._check_rows(len(instances))
        if all(isinstance(row, Mapping) for row in instances):
            return self._from_objects(instances)
        if all(isinstance(row, list) for row in instances):
            return self._from_value_rows(instances)
        raise BadRequest("\"instances\" must hold either objects (field: value) or lists of values in the order "
                         f"{', '.join(self.names)}; not a mix, not scalars")

    def _check_rows(self, n: int) -> None:
        if n > self.max_rows:
            raise BadRequest(f"{n} instances in one request; at most {self.max_rows} are accepted", status=413)

    def _from_objects(self, rows: list[Mapping]) -> pd.DataFrame:
        problems, expected = _Problems(), set(self.names)
        for i, row in enumerate(rows):
            keys = set(row)
            if keys != expected:
                missing, unknown = sorted(expected - keys), sorted(map(str, keys - expected))
                parts = ([f"missing {', '.join(missing)}"] if missing else []) + \
                        ([f"unknown {', '.join(unknown)}"] if unknown else [])
                problems.add(f"instance {i}: {' and '.join(parts)}")
        problems.raise_if_any("the request does not match the model's fields")
        return self._frame({name: [row[name] for row in rows] for name in self.names}, "instance")

    def _from_value_rows(self, rows: list[list]) -> pd.DataFrame:
        k = len(self.columns)
        problems = _Problems()
        for i, row in enumerate(rows):
            if len(row) != k:
                problems.add(f"instance {i} has {len(row)} values, expected {k}")
        problems.raise_if_any(f"each instance must list {k} values in the order {', '.join(self.names)}")
        return self._frame({name: [row[j] for row in rows] for j, name in enumerate(self.names)}, "instance")

    # -- V2: one tensor per column, each of shape [n] or [n, 1] ----------------------------
    def from_v2(self, inputs: Sequence[tuple[str, str, Sequence[int], object]]) -> pd.DataFrame:
        """``inputs`` are (name, datatype, shape, data) of the request's tensors."""
        if not inputs:
            raise BadRequest(f"a V2 request needs \"inputs\": one tensor per field ({', '.join(self.names)})")
        types, problems, columns, rows = dict(self.columns), _Problems(), {}, None
        given = [name for name, *_ in inputs]
        dupes = sorted({n for n in given if given.count(n) > 1})
        missing, unknown = sorted(set(self.names) - set(given)), sorted(set(given) - set(self.names))
        for label, names in (("missing inputs", missing), ("unknown inputs", unknown), ("repeated inputs", dupes)):
            if names:
                problems.add(f"{label}: {', '.join(names)}")
        problems.raise_if_any("the request does not match the model's inputs")
        for name, datatype, shape, data in inputs:
            numeric = types[name] in NUMERIC_TYPES
            if datatype not in (V2_NUMERIC if numeric else V2_TEXT):
                expected = "a numeric type (FP64, FP32, INT64, ...)" if numeric else "BYTES"
                problems.add(f"input {name} ({types[name]}) has datatype {datatype}, expected {expected}")
                continue
            shape = list(shape or [])
            if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)) or any(
                    not isinstance(d, int) or d < 0 for d in shape):
                problems.add(f"input {name} has shape {shape}, expected [n] or [n, 1]")
                continue
            values = _flatten(data)
            if values is None or len(values) != shape[0]:
                problems.add(f"input {name} declares shape {shape} but carries "
                             f"{'nested or non-list data' if values is None else f'{len(values)} values'}")
                continue
            if rows is not None and shape[0] != rows:
                problems.add(f"input {name} has {shape[0]} rows, others have {rows}")
                continue
            rows = shape[0]
            columns[name] = values
        problems.raise_if_any("the request's tensors are malformed")
        if not rows:
            raise BadRequest("the request's tensors hold no rows")
        self._check_rows(rows)
        return self._frame(columns, "row")

    # -- shared ---------------------------------------------------------------------------
    def _frame(self, values: dict[str, list], unit: str) -> pd.DataFrame:
        problems = _Problems()
        for name, kind in self.columns:
            for i, v in enumerate(values[name]):
                if kind in NUMERIC_TYPES and v is not None and (type(v) is bool or not isinstance(v, (int, float))):
                    problems.add(f"{unit} {i}: {name} must be a number or null, got {_describe(v)}")
                elif kind in NUMERIC_TYPES and v is not None and not _finite(v):
                    # JSON has no NaN or Infinity, but V2 bodies are parsed leniently (NaN, Infinity, 1e400
                    # and integers beyond any float get through): refused as V1's parser refuses them.
                    problems.add(f"{unit} {i}: {name} must be a finite number or null, got {_describe(v)}")
                elif kind in TEXT_TYPES and v is not None and not isinstance(v, str):
                    problems.add(f"{unit} {i}: {name} must be text or null, got {_describe(v)}")
            if len(problems.items) >= MAX_PROBLEMS:
                break
        problems.raise_if_any("wrong value types")
        return model_frame(self.columns, values)


def model_frame(columns: Sequence[tuple[str, str]], values: Mapping[str, Sequence]) -> pd.DataFrame:
    """The frame a model scores, whoever built the values (a request, a batch of Parquet rows).

    The signature's columns in order; numbers as float64 (integers too, so a
    missing value is NaN: None becomes NaN), text as objects (None when
    missing). Values must already be checked against their column's type.
    """
    return pd.DataFrame({name: np.asarray(values[name], dtype=np.float64 if kind in NUMERIC_TYPES else object)
                         for name, kind in columns}, columns=[name for name, _ in columns])


def is_text(value: str) -> bool:
    """Whether a str is Unicode text that can be written as UTF-8: a V2 body, parsed by the json module, can
    carry unpaired surrogates ("\\ud800") that no answer, log or lookup can encode."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _finite(value: int | float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        return False


def _flatten(data: object) -> list | None:
    """Values of a [n] or [n, 1] tensor as a flat list; None when the data has another form."""
    if isinstance(data, np.ndarray):
        return data.reshape(-1).tolist() if data.ndim <= 2 else None
    if not isinstance(data, list):
        return None
    if all(isinstance(v, list) for v in data) and data:
        if any(len(v) != 1 for v in data):
            return None
        return [v[0] for v in data]
    return data
