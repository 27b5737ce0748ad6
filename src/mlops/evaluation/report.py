"""The evaluation and gate report as people see it: HTML with plots, and a Markdown summary."""

from __future__ import annotations

import math

from mlops.evaluation.gate import Blessing
from mlops.evaluation.metrics import EvaluationResult
from mlops.html_report import esc, figure_png, page, pyplot, table


def _fmt(value) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else (
        f"{value:.4f}" if isinstance(value, float) else str(value))


def _curves(candidate: EvaluationResult, champion: EvaluationResult | None) -> str:
    plt = pyplot()
    fig, (roc, rel) = plt.subplots(1, 2, figsize=(8.5, 3.4))
    for name, result, color in (("candidate", candidate, "#0969da"), ("champion", champion, "#8c959f")):
        if result is None:
            continue
        fpr, tpr, _ = result.roc
        roc.plot(fpr, tpr, label=f"{name} (AUC {result.metrics['roc_auc']:.3f})", color=color)
        predicted, observed = result.reliability
        rel.plot(predicted, observed, marker="o", label=name, color=color)
    roc.plot([0, 1], [0, 1], linestyle=":", color="#d0d7de")
    rel.plot([0, 1], [0, 1], linestyle=":", color="#d0d7de", label="perfectly calibrated")
    roc.set(title="ROC curve", xlabel="false positive rate", ylabel="true positive rate")
    rel.set(title="Reliability", xlabel="mean predicted probability", ylabel="observed positive rate")
    roc.legend(fontsize=7)
    rel.legend(fontsize=7)
    return figure_png(fig)


def gate_html(model: str, candidate: EvaluationResult, champion: EvaluationResult | None, blessing: Blessing,
              candidate_name: str, class_names: tuple[str, str] = ("negative", "positive")) -> str:
    negative, positive = class_names
    css = "pass" if blessing.blessed else "fail"
    body = [f"<h1>Evaluation gate: {esc(model)}</h1>",
            f'<p><span class="verdict {css}">{esc(blessing.verdict)}</span> &nbsp; candidate {esc(candidate_name)}'
            + (f" against champion {esc(blessing.champion)}" if blessing.champion else " (no champion yet)")
            + f"; test set: the latest {candidate.rows} label events, decision threshold {candidate.threshold}</p>",
            "<h2>Rules</h2>",
            table(["", "rule", "candidate", "champion", "threshold", "why"],
                  [('<span class="err">FAIL</span>' if not r.passed else "ok", r.rule, _fmt(r.candidate),
                    _fmt(r.champion), _fmt(r.threshold), r.reason) for r in blessing.rules], raw_columns={0}),
            "<h2>Metrics on the test set</h2>",
            table(["metric", "candidate", "champion"],
                  [(k, _fmt(v), _fmt(champion.metrics.get(k)) if champion else "") for k, v in candidate.metrics.items()]),
            "<h2>Curves</h2>", _curves(candidate, champion),
            "<h2>Confusion matrix (candidate)</h2>",
            table(["", f"predicted {negative}", f"predicted {positive}"],
                  [(f"actual {negative}", *candidate.confusion[0]), (f"actual {positive}", *candidate.confusion[1])]),
            "<h2>Slices (candidate)</h2>",
            table(["slice", "rows", "positives", "selection rate", "TPR", "FPR", "F1", "ROC AUC"],
                  [(f"{s.column}={s.value}", s.size, s.positives, _fmt(s.selection_rate), _fmt(s.tpr), _fmt(s.fpr),
                    _fmt(s.metrics.get("f1")), _fmt(s.metrics.get("roc_auc"))) for s in candidate.slices])]
    return page(f"gate {model}", "".join(body))


def gate_markdown(model: str, blessing: Blessing, candidate_name: str, report_uri: str | None) -> str:
    lines = [f"# Gate: {blessing.verdict}", "",
             f"{model} candidate {candidate_name}" + (f" vs champion {blessing.champion}" if blessing.champion else
                                                      " (no champion)"), "",
             "| | rule | why |", "|---|---|---|"]
    lines += [f"| {'ok' if r.passed else '**FAIL**'} | {r.rule} | {r.reason.replace('|', '/')} |" for r in blessing.rules]
    if report_uri:
        lines += ["", f"Report: `{report_uri}`"]
    return "\n".join(lines) + "\n"
