"""Rollout analysis: candidate against stable, from the transformers' Prometheus metrics.

The transformer counts every predictor call by role (primary or shadow),
model version and outcome, with latency histograms, rows, positives, score
sums and shadow agreement. A phase's window is the difference between two
scrapes (summed over all transformer replicas), so the analysis needs no
Prometheus server and sees exactly the traffic of its own window. A counter
that went down (a restarted replica) counts from zero.
"""

from __future__ import annotations

import math

import urllib.request
from collections import defaultdict
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from mlops.errors import RolloutError
from mlops.rollout.policy import Condition
from mlops.serving.http_server import UNKNOWN_VERSION


Sample = tuple[str, frozenset]  # (sample name, frozenset of label items)


def scrape(urls: list[str], timeout_s: float = 5.0) -> dict[Sample, float]:
    """Sum of the ``mlops_*`` samples of every ``/metrics`` URL."""
    total: dict[Sample, float] = defaultdict(float)
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310 (configured URLs)
                text = resp.read().decode()
        except OSError as exc:
            raise RolloutError(f"cannot read metrics from {url}: {exc}") from None
        for family in text_string_to_metric_families(text):
            if not family.name.startswith("mlops_"):
                continue
            for s in family.samples:
                total[(s.name, frozenset(s.labels.items()))] += s.value
    return dict(total)


def window(before: dict[Sample, float], after: dict[Sample, float]) -> dict[Sample, float]:
    """Per-sample increase between two scrapes (a counter reset counts from zero)."""
    out = {}
    for key, value in after.items():
        delta = value - before.get(key, 0.0)
        out[key] = value if delta < 0 else delta
    return out


@dataclass
class Traffic:
    """What one model version did in a window, as the transformer saw it."""

    requests: float = 0.0
    errors: float = 0.0
    rows: float = 0.0
    positives: float = 0.0
    score_sum: float = 0.0
    latency_buckets: dict[float, float] | None = None

    @property
    def error_rate(self) -> float | None:
        total = self.requests + self.errors
        return self.errors / total if total else None

    @property
    def positive_rate(self) -> float | None:
        return self.positives / self.rows if self.rows else None

    @property
    def mean_score(self) -> float | None:
        return self.score_sum / self.rows if self.rows else None

    def latency_quantile_ms(self, q: float) -> float | None:
        """Quantile from the cumulative histogram, interpolated linearly inside its bucket."""
        buckets = sorted((self.latency_buckets or {}).items())
        if not buckets or buckets[-1][1] <= 0:
            return None
        target, lower_bound, lower_count = q * buckets[-1][1], 0.0, 0.0
        for bound, count in buckets:
            if count >= target:
                if bound == float("inf"):
                    return lower_bound * 1000
                share = (target - lower_count) / (count - lower_count) if count > lower_count else 1.0
                return (lower_bound + share * (bound - lower_bound)) * 1000
            lower_bound, lower_count = bound, count
        return None


def _labels(key: Sample) -> dict[str, str]:
    return dict(key[1])


def traffic(delta: dict[Sample, float], role: str, versions: set[str], latency: str = "round_trip") -> Traffic:
    """Sum the window's samples of ``role`` over ``versions``.

    ``latency`` picks the histogram: ``round_trip`` as the transformer timed
    the call, or ``server`` as the predictor reported it (Server-Timing).
    """
    histogram = {"round_trip": "mlops_upstream_latency_seconds_bucket",
                 "server": "mlops_upstream_server_seconds_bucket"}[latency]
    t, buckets = Traffic(), defaultdict(float)
    for key, value in delta.items():
        name, labels = key[0], _labels(key)
        if labels.get("role") != role or labels.get("model_version") not in versions:
            continue
        if name == "mlops_upstream_requests_total":
            if labels.get("outcome") == "ok":
                t.requests += value
            else:
                t.errors += value
        elif name == "mlops_upstream_rows_total":
            t.rows += value
        elif name == "mlops_upstream_positive_rows_total":
            t.positives += value
        elif name == "mlops_upstream_score_sum_total":
            t.score_sum += value
        elif name == histogram:
            buckets[float(labels["le"])] += value
    t.latency_buckets = dict(buckets)
    return t


def agreement(delta: dict[Sample, float], version: str) -> float | None:
    agree = disagree = 0.0
    for key, value in delta.items():
        labels = _labels(key)
        if key[0] == "mlops_shadow_rows_total" and labels.get("model_version") == version:
            if labels.get("agree") == "yes":
                agree += value
            else:
                disagree += value
    total = agree + disagree
    return agree / total if total else None


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return None
    return a / b if b > 0 else (1.0 if a == 0 else float("inf"))


def _gap(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else abs(a - b)


def significant_gap(p1: float | None, n1: float, p2: float | None, n2: float) -> float | None:
    """|p1 - p2| less two standard errors of that difference, floored at 0: the smallest gap between
    the two positive rates the samples support. Over 60 canary rows the raw gap swings by +-0.1 on
    sampling alone; over thousands this is the raw gap."""
    if p1 is None or p2 is None or not n1 or not n2:
        return None
    error = math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    return max(0.0, abs(p1 - p2) - 2 * error)


def tail_quantile(requests: float) -> float:
    """The tail quantile ``p99_*`` metrics use: 0.99, or 1 - 2/n when the candidate served fewer than
    200 requests. With 60 requests a "p99" is their slowest one, and one scheduling hiccup would fail
    the step; both sides are read at the same quantile, so the ratio stays like for like."""
    return min(0.99, max(0.5, 1.0 - 2.0 / requests)) if requests > 0 else 0.99


def measure(delta: dict[Sample, float], phase: str, stable: str, candidate: str) -> tuple[dict[str, float | None], float]:
    """The policy's metrics for ``phase`` and the number of candidate requests they rest on."""
    if phase == "shadow":
        # Mirrors are sent after the caller's answer, so their round trip includes waiting in the
        # transformer; the predictors' own Server-Timing compares the two models like for like.
        cand = traffic(delta, "shadow", {candidate}, latency="server")
        base = traffic(delta, "primary", {stable}, latency="server")
    else:
        # An error the transformer cannot attribute (the predictor answered nothing) is the candidate's:
        # wrongly blaming it costs a retry, wrongly clearing it costs production.
        cand = traffic(delta, "primary", {candidate, UNKNOWN_VERSION})
        base = traffic(delta, "primary", {stable})
    cand_p50, base_p50 = cand.latency_quantile_ms(0.5), base.latency_quantile_ms(0.5)
    tail = tail_quantile(cand.requests + cand.errors)
    cand_p99, base_p99 = cand.latency_quantile_ms(tail), base.latency_quantile_ms(tail)
    metrics = {
        "error_rate": cand.error_rate,
        "p50_latency_ms": cand_p50,
        "p50_latency_ratio": _ratio(cand_p50, base_p50),
        "p99_latency_ms": cand_p99,
        "p99_latency_ratio": _ratio(cand_p99, base_p99),
        "positive_rate_delta": significant_gap(cand.positive_rate, cand.rows, base.positive_rate, base.rows),
        "mean_score_delta": _gap(cand.mean_score, base.mean_score),
        "stable_p99_latency_ms": base_p99,
        "tail_quantile": tail,
        "stable_requests": base.requests + base.errors,
    }
    if phase == "shadow":
        metrics["agreement"] = agreement(delta, candidate)
    return metrics, cand.requests + cand.errors


@dataclass(frozen=True)
class Verdict:
    condition: str
    value: float | None
    passed: bool


def judge(metrics: dict[str, float | None], conditions: tuple[Condition, ...]) -> list[Verdict]:
    return [Verdict(c.describe(), metrics.get(c.metric), c.holds(metrics.get(c.metric))) for c in conditions]


def hopeless(metrics: dict[str, float | None], requests: float, min_requests: int,
             conditions: tuple[Condition, ...]) -> Condition | None:
    """The error-rate condition the phase can no longer meet (errors seen exceed what all of it may have)."""
    rate = metrics.get("error_rate")
    for c in conditions:
        if c.metric == "error_rate" and c.max is not None and rate is not None:
            if rate * requests > c.max * max(min_requests, requests) and requests >= min(10, min_requests):
                return c
    return None
