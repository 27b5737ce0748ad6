"""Self-contained HTML reports: one file, inline CSS, plots embedded as PNG.

The Kubeflow dashboard renders an HTML artifact in a sandboxed frame, so a
report must not load anything from elsewhere.
"""

from __future__ import annotations

import base64
import html
import io
import math
from typing import Iterable

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:24px;color:#1f2328;max-width:1200px}
h1{font-size:22px;margin-bottom:4px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #d0d7de}
.verdict{display:inline-block;padding:4px 10px;border-radius:6px;font-weight:600;color:#fff}
.pass{background:#1a7f37}.fail{background:#cf222e}.warn{color:#9a6700}.err{color:#cf222e}
table{border-collapse:collapse;font-size:13px;margin:8px 0}th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:left}
th{background:#f6f8fa}.grid{display:flex;flex-wrap:wrap;gap:12px}.card{border:1px solid #d0d7de;border-radius:6px;padding:6px}
.muted{color:#656d76;font-size:12px}
"""


def esc(value: object) -> str:
    return html.escape(str(value))


def fmt(value) -> str:
    """A table cell's number: 4 significant digits; nothing for None or NaN."""
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend: reports are drawn headless, in tasks and servers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_png(fig) -> str:
    """A matplotlib figure as an <img> with the PNG inline; closes the figure."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return f'<img alt="plot" src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'


def table(headers: Iterable[str], rows: Iterable[Iterable[object]], raw_columns: set[int] = frozenset()) -> str:
    """An HTML table; cells are escaped except in ``raw_columns`` (already HTML)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c if i in raw_columns else esc(c)}</td>" for i, c in enumerate(row))
                   + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def page(title: str, body: str) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title>"
            f"<style>{_CSS}</style></head><body>{body}</body></html>")
