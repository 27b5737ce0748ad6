"""The monitoring report as people see it: HTML with per-feature plots, and a Markdown summary."""

from __future__ import annotations

from mlops.html_report import esc, figure_png, fmt, page, pyplot, table
from mlops.monitoring.drift import ColumnDrift, DriftReport
from mlops.stats.plots import distribution_plot
from mlops.stats.profile import Profile


def _plot_title(drift: ColumnDrift) -> str:
    return f"{drift.column}: {drift.method or 'n/a'} {fmt(drift.value)} ({'DRIFT' if drift.drifted else 'ok'})"


def _drift_rows(columns: list[ColumnDrift]) -> list[tuple]:
    rows = []
    for c in columns:
        verdict = '<span class="err">DRIFT</span>' if c.drifted else "ok"
        missing = f"{c.reference_missing:.1%} -> {c.current_missing:.1%}"
        if c.missing_drifted:
            missing = f'<span class="err">{missing} DRIFT</span>'
        rows.append((esc(c.column), esc(c.kind), esc(c.method_label or c.note), fmt(c.value), fmt(c.threshold),
                     verdict, missing, "" if c.exact else "compressed reference"))
    return rows


def _performance_plot(performance, metric: str) -> str | None:
    points = [w for w in performance if w.window != "all" and w.metrics.get(metric) is not None]
    if not points:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 2.6))
    for version in sorted({w.model_version for w in points}, key=lambda v: int(v) if v.isdigit() else 0):
        rows = [w for w in points if w.model_version == version]
        ax.plot([w.window[:16] for w in rows], [w.metrics[metric] for w in rows], marker="o", label=f"v{version}")
    ax.set_ylabel(f"realized {metric}", fontsize=7)
    ax.tick_params(labelsize=6)
    ax.tick_params(axis="x", rotation=30)
    ax.legend(fontsize=6)
    return figure_png(fig)


def monitoring_html(result, reference: Profile | None = None, current: Profile | None = None,
                    metric: str = "roc_auc") -> str:
    decision = result.decision
    badge = "fail" if decision in ("retrain", "rollback") else "pass"
    body = [f"<h1>Monitoring: {esc(result.model)} (production v{esc(result.production)})</h1>",
            f'<p><span class="verdict {badge}">{esc(decision.upper())}</span> &nbsp; window '
            f"{esc(result.window_start)} to {esc(result.window_end)}: {result.rows} logged rows</p>"]
    if result.alerts:
        body += ["<h2>Alerts</h2>", table(["alert", "action", "why"],
                                           [(a.name, a.action, a.reason) for a in result.alerts])]
    if result.actions:
        body += ["<h2>Actions</h2><ul>" + "".join(f"<li>{esc(a)}</li>" for a in result.actions) + "</ul>"]
    drift: DriftReport | None = result.drift
    if drift is None:
        body += [f"<h2>Drift</h2><p>{esc(result.drift_note)}</p>"]
    else:
        body += [f"<h2>Drift</h2><p>{len(drift.drifted_features)} of {len(drift.features)} features drifted "
                 f"({drift.share_drifted:.0%}; dataset drift at {drift.drift_share:.0%}): "
                 f"<b>{'DATASET DRIFT' if drift.dataset_drift else 'no dataset drift'}</b>. "
                 f"Prediction drift: <b>{'yes' if drift.prediction_drift else 'no'}</b>.</p>",
                 table(["column", "type", "test", "value", "threshold", "verdict", "missing (ref -> now)", ""],
                       _drift_rows(drift.features + drift.outputs), raw_columns={0, 1, 2, 5, 6})]
        if reference is not None and current is not None:
            plots = []
            for c in drift.outputs + sorted(drift.features, key=lambda c: (not c.drifted, c.column)):
                part = "outputs" if c in drift.outputs else "features"
                ref, cur = getattr(reference, part).get(c.column), getattr(current, part).get(c.column)
                if ref is not None and cur is not None and (plot := distribution_plot(_plot_title(c), ref, cur,
                                                                                        c.drifted)):
                    plots.append(plot)
            body += ["<h2>Distributions (reference vs current window)</h2>",
                     '<div class="grid">' + "".join(f'<div class="card">{p}</div>' for p in plots) + "</div>"]
    body += ["<h2>Realized performance (delayed labels)</h2>"]
    if result.labels is None:
        body += ["<p>No label feed was given: performance is not judged.</p>"]
    else:
        lab = result.labels
        body += [f"<p>{lab['labeled']} of {lab['predictions']} logged predictions have their label "
                 f"({lab['coverage']:.1%} coverage, joined by {esc(lab['joined_by'])}); {lab['pending_labels']} "
                 f"labels arrive later than this run; {lab['unmatched_labels']} labels judge no logged prediction."
                 "</p>"]
        if (plot := _performance_plot(result.performance, metric)):
            body += [plot]
        kpis = sorted({k for w in result.performance for k in w.kpi})
        rows = [(f"v{w.model_version}", w.window, w.predictions, w.labeled, f"{w.coverage:.1%}",
                 *(fmt(w.metrics.get(m)) for m in (metric, "f1", "brier", "mean_score")),
                 *(fmt(w.kpi.get(k)) for k in kpis)) for w in result.performance]
        body += [table(["version", "window", "predictions", "labeled", "coverage", metric, "f1", "brier",
                        "mean score", *kpis], rows)]
    return page(f"monitoring {result.model}", "".join(body))


def monitoring_markdown(result, metric: str = "roc_auc") -> str:
    lines = [f"# Monitoring {result.model}: {result.decision.upper()}", "",
             f"Production v{result.production}; window {result.window_start} to {result.window_end}, "
             f"{result.rows} logged rows.", ""]
    if result.drift is None:
        lines += [f"Drift: {result.drift_note}", ""]
    else:
        d = result.drift
        lines += [f"Drift: {len(d.drifted_features)}/{len(d.features)} features drifted ({d.share_drifted:.0%}); "
                  f"dataset drift **{'yes' if d.dataset_drift else 'no'}**, prediction drift "
                  f"**{'yes' if d.prediction_drift else 'no'}**, missing-rate drift: "
                  f"{', '.join(d.missing_drift) or 'none'}.", "",
                  "| column | test | value | threshold | drift |", "|---|---|---|---|---|"]
        lines += [f"| {c.column} | {c.method or c.note} | {fmt(c.value)} | {fmt(c.threshold)} | "
                  f"{'DRIFT' if c.drifted else ''}{' missing' if c.missing_drifted else ''} |"
                  for c in d.features + d.outputs]
        lines.append("")
    if result.labels is not None:
        lines += [f"Labels: {result.labels['labeled']}/{result.labels['predictions']} "
                  f"({result.labels['coverage']:.1%}), {result.labels['pending_labels']} pending.", ""]
        lines += [f"- v{w.model_version}: realized {metric} {fmt(w.metrics.get(metric))} over {w.labeled} labels"
                  for w in result.performance if w.window == "all"]
        lines.append("")
    lines += [f"- **{a.name}** -> {a.action}: {a.reason}" for a in result.alerts] or ["No alerts."]
    lines += [""] + [f"- {a}" for a in result.actions]
    if result.report_uri:
        lines += ["", f"Full report with plots: `{result.report_uri}monitoring.html`"]
    return "\n".join(lines) + "\n"
