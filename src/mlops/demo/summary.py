"""The demo's closing page: the whole story in one self-contained HTML file.

What it holds: every step with its duration and what it printed; plots of
the step timeline, of every gate decision (candidate against champion), of
every rollout's phases and of the drift each monitoring run measured; the
registry's versions with their aliases and approvals, the audit trail and
the lineage of production; and links to a local copy of every report the
run published on S3 (validation, gate, rollout, monitoring), kept in a
``reports/`` folder beside the page.
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from mlops.html_report import esc, figure_png, fmt, page, table

REPORTS_PREFIX = "reports/"


@dataclass
class Step:
    number: int
    title: str
    seconds: float = 0.0
    output: list[str] = field(default_factory=list)
    failed: bool = False


class StoryRecorder(io.TextIOBase):
    """Stands in for stdout during the demo: the terminal sees everything, and each step keeps its lines."""

    def __init__(self, terminal) -> None:
        self.terminal, self.steps, self._clock = terminal, [], time.perf_counter()
        self._partial = ""

    def begin(self, number: int, title: str) -> None:
        self._close_step()
        self.steps.append(Step(number, title))
        self._clock = time.perf_counter()

    def _close_step(self) -> None:
        if self.steps:
            self.steps[-1].seconds = time.perf_counter() - self._clock

    def fail(self, error: str) -> None:
        self._close_step()
        if self.steps:
            self.steps[-1].failed = True
            self.steps[-1].output.append(f"FAILED: {error}")

    def finish(self) -> None:
        self._close_step()

    def write(self, text: str) -> int:
        self.terminal.write(text)
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        if self.steps:
            self.steps[-1].output.extend(lines)
        return len(text)

    def flush(self) -> None:
        self.terminal.flush()

    def isatty(self) -> bool:
        return self.terminal.isatty()


def copy_reports(store, out_dir: Path) -> list[str]:
    """Every report object the run published, copied under ``out_dir`` at its S3 key; their keys."""
    from mlops.platform.storage import safe_key

    keys = [safe_key(k) for k in store.list_keys(REPORTS_PREFIX) if not k.endswith("_MANIFEST.json")]
    for key in keys:
        store.get_file(key, out_dir / key)
    return keys


def _json_reports(keys: list[str], out_dir: Path, part: str, name: str) -> list[tuple[str, dict]]:
    return [(k, json.loads((out_dir / k).read_text())) for k in keys if f"/{part}/" in k and k.endswith(name)]


def _timeline_plot(steps: list[Step]) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 0.32 * len(steps) + 0.8))
    labels = [f"{s.number}. {s.title[:48]}" for s in steps]
    ax.barh(labels[::-1], [s.seconds for s in steps][::-1],
            color=["#cf222e" if s.failed else "#0969da" for s in steps][::-1])
    ax.set_xlabel("seconds")
    ax.set_title("the demo's steps")
    return figure_png(fig)


def _gate_plot(decisions: list[dict]) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3))
    for i, d in enumerate(decisions):
        f1 = next((r for r in d["rules"] if r["rule"] == "change:f1"), None)
        if f1 is None:  # no champion to beat: only value thresholds applied
            ax.text(i, 0.02, "no champion:\nvalue rules only", ha="center", fontsize=7)
            continue
        ax.bar(i - 0.2, f1["candidate"], width=0.4, color="#1a7f37" if d["blessed"] else "#cf222e")
        if f1["champion"] is not None:
            ax.bar(i + 0.2, f1["champion"], width=0.4, color="#8c959f")
    ax.set_xticks(range(len(decisions)), [f"run {d['run_id'][:6]}\n{d['verdict']}" for d in decisions], fontsize=7)
    ax.set_ylabel("test F1")
    ax.set_title("every gate decision: candidate (green blessed, red not) against the champion (grey)")
    return figure_png(fig)


def _rollout_plot(rollouts: list[dict]) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3))
    for r in rollouts:
        percents = [p["percent"] for p in r["phases"]]
        line, = ax.plot(range(len(percents)), percents, marker="o", label=f"v{r['candidate']}: {r['outcome']}")
        for x, p in enumerate(r["phases"]):
            if not p["passed"]:
                ax.plot(x, p["percent"], marker="X", markersize=12, color="#cf222e")
    ax.set_xlabel("phase (0 = shadow)")
    ax.set_ylabel("candidate's share of traffic (%)")
    ax.set_title("every rollout: shadow, then canary steps (a red X: the analysis failed, traffic went back)")
    ax.legend(fontsize=8)
    return figure_png(fig)


def _drift_plot(runs: list[dict]) -> str:
    import matplotlib.pyplot as plt
    import numpy as np

    columns = [f["column"] for f in runs[0]["drift"]["features"]]
    fig, ax = plt.subplots(figsize=(9, 3.2))
    width = 0.8 / len(runs)
    for i, run in enumerate(runs):
        by_column = {f["column"]: f["value"] / f["threshold"] for f in run["drift"]["features"] if f["threshold"]}
        ax.bar(np.arange(len(columns)) + i * width, [by_column.get(c, 0) for c in columns], width=width,
               label=f"window ending {run['window']['end'][11:19]}: {run['decision']}")
    ax.axhline(1.0, color="#cf222e", linestyle="--", linewidth=1)
    ax.set_xticks(np.arange(len(columns)) + 0.4 - width / 2, columns, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("drift / threshold")
    ax.set_title("feature drift per monitoring run (above the dashed line: drifted)")
    ax.legend(fontsize=8)
    return figure_png(fig)


def _run_start(decision: dict) -> int:
    """When the gate's training run started (decisions in the order they were made)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        return MlflowClient().get_run(decision["run_id"]).info.start_time
    except MlflowException:
        return 0


def _registry_rows(model: str) -> list[list[str]]:
    from mlflow import MlflowClient

    from mlops.registry.promotion import GATE_CHAMPION_TAG

    client = MlflowClient()
    rows = []
    for found in sorted(client.search_model_versions(f"name = '{model}'"), key=lambda v: int(v.version)):
        mv = client.get_model_version(model, found.version)  # a search leaves the aliases out
        tags = mv.tags
        rows.append([f"v{mv.version}", ", ".join(mv.aliases), time.strftime("%H:%M:%S", time.gmtime(mv.creation_timestamp / 1000)),
                     tags.get(GATE_CHAMPION_TAG, ""), tags.get("mlops.approval.by", ""),
                     tags.get("mlops.production.reason", ""), mv.run_id[:12]])
    return rows


def write_summary(out_dir: Path, steps: list[Step], store, model: str, outcome: str) -> Path:
    """Write ``out_dir/summary.html`` (and ``out_dir/reports/``); returns the page's path."""
    from mlops.registry import audit
    from mlops.registry import promotion as registry

    out_dir.mkdir(parents=True, exist_ok=True)
    keys = copy_reports(store, out_dir)
    body = [f"<h1>mlops-suite demo: {esc(outcome)}</h1>",
            f"<p class='muted'>{len(steps)} steps in {sum(s.seconds for s in steps):.0f} s; "
            f"{len(keys)} reports copied beside this page. Everything below was produced by this run.</p>"]
    if steps:
        body.append(_timeline_plot(steps))
    gates = sorted((d for _, d in _json_reports(keys, out_dir, "gate", "blessing.json")), key=_run_start)
    rollouts = sorted((d for _, d in _json_reports(keys, out_dir, "rollout", ".json")), key=lambda d: d["started_at"])
    monitoring = sorted((d for _, d in _json_reports(keys, out_dir, "monitoring", "monitoring.json")),
                        key=lambda d: d["window"]["end"])
    body.append("<h2>Gate decisions</h2>")
    body.append(_gate_plot(gates) if gates else "<p>none</p>")
    body.append("<h2>Rollouts</h2>")
    body.append(_rollout_plot(rollouts) if rollouts else "<p>none</p>")
    if rollouts:
        body.append(table(["candidate", "stable", "outcome", "reason"],
                          [[f"v{r['candidate']}", f"v{r['stable']}", r["outcome"], r["reason"]] for r in rollouts]))
    body.append("<h2>Monitoring</h2>")
    if monitoring:
        body.append(_drift_plot(monitoring))
        body.append(table(["window end", "rows", "drifted features", "prediction drift", "decision"],
                          [[m["window"]["end"], m["window"]["rows"], ", ".join(m["drift"]["drifted_features"]),
                            m["drift"]["prediction_drift"], m["decision"]] for m in monitoring]))
    else:
        body.append("<p>none</p>")
    body.append("<h2>The registry</h2>")
    body.append(table(["version", "aliases", "registered (UTC)", "gate's champion", "approved by",
                       "production because", "run"], _registry_rows(model)))
    body.append("<h2>Audit trail</h2>")
    body.append(table(["at", "action", "version", "by", "reason"],
                      [[e.at, e.action, f"v{e.version}", e.actor, e.reason] for e in audit.trail(store, model)]))
    production = registry.alias_version(model, registry.PRODUCTION)
    if production:
        body.append(f"<h2>Lineage of production (v{esc(production)})</h2>")
        body.append(table(["what", "value"], registry.lineage(model, production)))
    body.append("<h2>Reports</h2>")
    links = [[k.split("/")[1], f"<a href='{esc(k)}'>{esc('/'.join(k.split('/')[2:]))}</a>"]
             for k in keys if k.endswith((".html", ".md", ".json"))]
    body.append(table(["kind", "report (local copy of s3://" + esc(store.bucket) + "/...)"], links, raw_columns={1}))
    body.append("<h2>The steps</h2>")
    for s in steps:
        text = "\n".join(line for line in s.output if line.strip())
        body.append(f"<details{' open' if s.failed else ''}><summary>{s.number}. {esc(s.title)} "
                    f"({fmt(round(s.seconds, 1))} s){' FAILED' if s.failed else ''}</summary>"
                    f"<pre style='white-space:pre-wrap;font-size:12px'>{esc(text)}</pre></details>")
    path = out_dir / "summary.html"
    path.write_text(page("mlops-suite demo", "\n".join(body)))
    return path

