"""The validation report as people see it: HTML with plots, and a Markdown summary."""

from __future__ import annotations

from mlops.html_report import esc, fmt, page, table
from mlops.stats.plots import distribution_plot
from mlops.validation.checks import ColumnSummary, ValidationResult


def _plot_title(column: ColumnSummary) -> str:
    verdict = "DRIFT" if column.drifted else "ok"
    return f"{column.name}: {column.drift_method} {fmt(column.drift_value)} ({verdict})"


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
    drifts = [(result.columns[name], result.reference[name], current) for name, current in result.profiles.items()
              if name in result.reference and result.columns[name].drift_method]
    plots = [p for column, reference, current in drifts
             if (p := distribution_plot(_plot_title(column), reference, current, column.drifted, current_label="batch"))]
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
