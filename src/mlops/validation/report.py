"""The validation report as people see it: HTML with plots, and a Markdown summary."""

from __future__ import annotations

import math

import numpy as np

from mlops import stats
from mlops.html_report import esc, figure_png, fmt, page, table
from mlops.validation.checks import ValidationResult

_MAX_BARS = 12


def _bin_labels(edges: list[float]) -> list[str]:
    labels = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        labels.append(f"<{hi:.3g}" if math.isinf(lo) else f">={lo:.3g}" if math.isinf(hi) else f"{lo:.3g}")
    return labels


def _distribution_plot(name: str, current, reference) -> str | None:
    """Reference vs batch proportions for one column, or None when there is nothing to draw."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if isinstance(current, stats.NumericProfile):
        if not current.count:
            return None
        labels = _bin_labels(current.edges)
        cur = np.asarray(current.counts, dtype=float)
        ref = np.asarray(reference.counts, dtype=float) if reference is not None else None
    else:
        if not current.count:
            return None
        if reference is not None:
            keys, ref, cur = stats.aligned(reference, current)
        else:
            keys, cur, ref = list(current.counts), np.asarray(list(current.counts.values()), dtype=float), None
        order = np.argsort(-(cur + (ref if ref is not None else 0)))[:_MAX_BARS]
        labels = [keys[i] for i in order]
        cur = cur[order]
        ref = ref[order] if ref is not None else None
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(4.2, 2.3))
    width = 0.4 if ref is not None else 0.8
    if ref is not None:
        ax.bar(x - width / 2, ref / max(ref.sum(), 1), width, label="reference", color="#8c959f")
    ax.bar(x + (width / 2 if ref is not None else 0), cur / max(cur.sum(), 1), width, label="batch", color="#0969da")
    ax.set_title(name, fontsize=9)
    ax.set_xticks(x, labels, rotation=45, ha="right", fontsize=6)
    ax.tick_params(axis="y", labelsize=6)
    ax.legend(fontsize=6)
    return figure_png(fig)


def validation_html(result: ValidationResult) -> str:
    verdict = '<span class="verdict pass">PASSED</span>' if result.passed else '<span class="verdict fail">FAILED</span>'
    body = [f"<h1>Data validation: {esc(result.dataset)} (contract v{result.contract_version})</h1>",
            f"<p>{verdict} &nbsp; {esc(result.source)}: {result.rows} rows, {len(result.errors)} errors, "
            f"{len(result.warnings)} warnings</p>"]
    if result.findings:
        rows = [(f'<span class="{"err" if f.severity == "error" else "warn"}">{esc(f.severity)}</span>',
                 f.check, f.column or "*", f.message) for f in result.findings]
        body += ["<h2>Findings</h2>", table(["severity", "check", "column", "what"], rows, raw_columns={0})]
    else:
        body += ["<h2>Findings</h2><p>None: the batch meets its contract.</p>"]
    col_rows = []
    for c in result.columns.values():
        drift = f"{c.drift_method} {fmt(c.drift_value)} (threshold {fmt(c.drift_threshold)})" if c.drift_method else ""
        col_rows.append((c.name, c.type, c.arrow_type or "missing", c.rows, f"{c.missing_fraction:.2%}",
                         fmt(c.minimum), fmt(c.maximum), drift + (" DRIFT" if c.drifted else "")))
    body += ["<h2>Columns</h2>", table(["column", "contract type", "file type", "rows", "missing", "min", "max",
                                         "drift vs reference"], col_rows)]
    plots = [p for name, profile in result.profiles.items()
             if (p := _distribution_plot(name, profile, result.reference.get(name)))]
    if plots:
        body += ["<h2>Distributions (reference vs batch)</h2>",
                 '<div class="grid">' + "".join(f'<div class="card">{p}</div>' for p in plots) + "</div>"]
    return page(f"validation {result.dataset}", "".join(body))


def validation_markdown(result: ValidationResult, report_uri: str | None = None) -> str:
    lines = [f"# Data validation: {'PASSED' if result.passed else 'FAILED'}", "",
             f"`{result.source}`: {result.rows} rows against contract **{result.dataset}** "
             f"v{result.contract_version}: {len(result.errors)} errors, {len(result.warnings)} warnings.", ""]
    if result.findings:
        lines += ["| severity | check | column | what |", "|---|---|---|---|"]
        lines += [f"| {f.severity} | {f.check} | {f.column or '*'} | {f.message.replace('|', '/')} |"
                  for f in result.findings]
    if report_uri:
        lines += ["", f"Full report with plots: `{report_uri}`"]
    return "\n".join(lines) + "\n"
