"""Reference vs current distribution plots, one home for the validation and monitoring reports."""

from __future__ import annotations

import numpy as np

from mlops.html_report import figure_png, pyplot
from mlops.stats.methods import aligned_counts, sturges_edges
from mlops.stats.summaries import NumericSummary, Summary

_MAX_BARS = 12
_COLORS = ("#8c959f", "#0969da")  # reference, current


def distribution_plot(title: str, reference: Summary, current: Summary, drifted: bool,
                      current_label: str = "current") -> str | None:
    """Reference vs current shares of one column (histogram or top categories), titled with its verdict."""
    if reference.count == 0 or current.count == 0:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.2, 2.4))
    labels = ("reference", current_label)
    if isinstance(reference, NumericSummary) and isinstance(current, NumericSummary) and reference.n_distinct() > 5:
        edges = sturges_edges(reference, current)
        for i, s in enumerate((reference, current)):
            counts = np.histogram(s.values, edges, weights=s.point_weights())[0]
            ax.stairs(counts / s.count, edges, label=labels[i], color=_COLORS[i], fill=i == 0,
                      alpha=0.6 if i == 0 else 1.0, linewidth=1.4)
    else:
        keys, ref, cur = aligned_counts(reference, current)
        order = np.argsort(-(ref / ref.sum() + cur / cur.sum()))[:_MAX_BARS]
        x = np.arange(len(order))
        ax.bar(x - 0.2, ref[order] / ref.sum(), 0.4, label=labels[0], color=_COLORS[0])
        ax.bar(x + 0.2, cur[order] / cur.sum(), 0.4, label=labels[1], color=_COLORS[1])
        ax.set_xticks(x, [str(keys[i])[:14] for i in order], rotation=45, ha="right", fontsize=6)
    ax.set_title(title, fontsize=8, color="#cf222e" if drifted else "#1f2328")
    ax.tick_params(labelsize=6)
    ax.legend(fontsize=6)
    return figure_png(fig)
