"""The plan of one batch prediction run: which model, which rows, split into shards.

A shard is a contiguous run of Parquet row groups (files x row groups, in
input order) and the shards are balanced by rows: the row group is the
smallest unit a reader can fetch alone. The plan is fixed before scoring
starts (the model version an alias pointed at, the input's files and ETags,
the decision threshold, one ``scored_at`` for every row), so every shard of
a run scores the same thing however long the run takes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from mlops.batch.inputs import InputFile
from mlops.registry.model_files import ModelRef


@dataclass(frozen=True)
class Piece:
    """Some row groups of one input file."""

    file: int  # index into Job.files
    row_groups: tuple[int, ...]


@dataclass(frozen=True)
class Shard:
    index: int
    rows: int
    pieces: tuple[Piece, ...]


def split_rows(sizes: list[int], parts: int) -> list[list[int]]:
    """Cut ``sizes`` (rows per unit, in order) into ``min(parts, len(sizes))`` contiguous, non-empty runs.

    The largest run is as small as any contiguous cut can make it (binary
    search over the capacity, then a greedy fill that leaves one unit for
    each run still to come). Returns the unit indices of each run.
    """
    if parts < 1:
        raise ValueError(f"the number of shards must be at least 1, got {parts}")
    n = min(parts, len(sizes))
    if n == 0:
        return []

    def runs_needed(capacity: int) -> int:
        count, filled = 1, 0
        for size in sizes:
            if filled + size > capacity and filled:
                count, filled = count + 1, 0
            filled += size
        return count

    low, high = max(sizes), sum(sizes)
    while low < high:
        middle = (low + high) // 2
        low, high = (low, middle) if runs_needed(middle) <= n else (middle + 1, high)
    runs: list[list[int]] = [[]]
    filled = 0
    for i, size in enumerate(sizes):
        still_to_open = n - len(runs)
        if runs[-1] and (filled + size > low or len(sizes) - i == still_to_open):
            runs.append([])
            filled = 0
        runs[-1].append(i)
        filled += size
    return runs


def make_shards(files: list[InputFile], shards: int) -> tuple[Shard, ...]:
    """Shards over the files' non-empty row groups (see :func:`split_rows`)."""
    units = [(f, g, rows) for f, file in enumerate(files) for g, rows in enumerate(file.row_groups) if rows]
    out = []
    for index, run in enumerate(split_rows([rows for *_, rows in units], shards)):
        pieces: list[Piece] = []
        for f, g, _ in (units[i] for i in run):
            if pieces and pieces[-1].file == f:
                pieces[-1] = Piece(f, pieces[-1].row_groups + (g,))
            else:
                pieces.append(Piece(f, (g,)))
        out.append(Shard(index, sum(units[i][2] for i in run), tuple(pieces)))
    return tuple(out)


@dataclass(frozen=True)
class Job:
    """Everything a shard and the commit need, written to the run's staging prefix as ``plan.json``."""

    input_uri: str
    output_uri: str
    attempt: str  # unique per run attempt: names its staging prefix
    files: tuple[InputFile, ...]
    fingerprint: str  # of the input files (mlops.batch.inputs.fingerprint)
    model: ModelRef
    columns: tuple[tuple[str, str], ...]  # the model's signature: (name, type)
    keep: tuple[str, ...]
    threshold: float
    scored_at: str  # ISO 8601, UTC, microseconds: one per run
    planned_at: float  # epoch seconds, to measure the run's rows per second
    shards: tuple[Shard, ...]

    @property
    def rows(self) -> int:
        return sum(s.rows for s in self.shards)

    @property
    def key(self) -> str:
        """What makes two runs the same: input, model version (and its files), kept columns, threshold.

        Not the shard count or chunk size: they do not change a single value.
        """
        identity = {"input": self.fingerprint, "model": [self.model.name, self.model.version, self.model.digest],
                    "keep": list(self.keep), "threshold": self.threshold}
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()

    def to_json(self) -> str:
        return json.dumps({
            "input_uri": self.input_uri, "output_uri": self.output_uri, "attempt": self.attempt,
            "files": [f.to_json() for f in self.files], "fingerprint": self.fingerprint,
            "model": {"name": self.model.name, "version": self.model.version, "digest": self.model.digest,
                      "storage_uri": self.model.storage_uri},
            "columns": [list(c) for c in self.columns], "keep": list(self.keep), "threshold": self.threshold,
            "scored_at": self.scored_at, "planned_at": self.planned_at,
            "shards": [{"index": s.index, "rows": s.rows,
                        "pieces": [{"file": p.file, "row_groups": list(p.row_groups)} for p in s.pieces]}
                       for s in self.shards],
        }, indent=1)

    @classmethod
    def from_json(cls, text: str) -> "Job":
        raw = json.loads(text)
        m = raw["model"]
        return cls(
            raw["input_uri"], raw["output_uri"], raw["attempt"], tuple(InputFile.from_json(f) for f in raw["files"]),
            raw["fingerprint"], ModelRef(m["name"], m["version"], m["digest"], m["storage_uri"]),
            tuple((n, t) for n, t in raw["columns"]), tuple(raw["keep"]), float(raw["threshold"]),
            raw["scored_at"], float(raw["planned_at"]),
            tuple(Shard(int(s["index"]), int(s["rows"]),
                        tuple(Piece(int(p["file"]), tuple(int(g) for g in p["row_groups"])) for p in s["pieces"]))
                  for s in raw["shards"]))
