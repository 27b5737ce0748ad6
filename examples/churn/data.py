"""Deterministic synthetic subscription-churn data: the churn project's ``data.generator`` hook.

:func:`generate` draws one row per subscriber: a monthly snapshot of a
streaming/telecom-style subscription, taken at ``snapshot_timestamp``, with
the account's features at that moment and whether the subscriber cancelled
within the following 30 days (``churned``: ``"yes"`` or ``"no"``). The label
becomes known at ``label_timestamp`` = snapshot + 30 days, when the 30-day
window has closed. The same arguments always give the same
:class:`pandas.DataFrame`.

One snapshot per subscriber, so ``subscriber_id`` (int64) is unique and is the
raw data's key; snapshots are spread uniformly over ``days`` (365) days from ``start``
and the frame is sorted by ``snapshot_timestamp`` (to the second).

Data-generating process (vectorised NumPy; every variable has its own random
stream spawned from ``numpy.random.default_rng(seed)``, so a scenario that
changes one variable leaves the draws of every other variable intact):

* ``age_band`` ("18-29", "30-44", "45-64", "65+") and ``gender`` ("F", "M")
  are drawn from fixed mixes. They are never features. ``gender`` influences
  nothing. ``age_band`` has small, indirect effects only: older subscribers
  have somewhat longer tenures, use the service slightly less, and pay by
  bank transfer or invoice more often. So the label depends on age only
  through those features, and a model without age has small gaps
  (see the README for the measured numbers).
* ``region`` (north, south, east, west): a fixed mix with a small effect on
  churn (a competitor is stronger in the south).
* ``tenure_months`` (0-72) ~ Gamma, capped at 72. ``contract_type``
  (monthly, annual, two_year) depends on tenure: long-standing subscribers
  are more often on long contracts.
* ``plan`` (basic, standard, premium). ``monthly_fee`` is the plan's list
  price (9.99, 15.99, 24.99) with a few percent of personal variation
  (add-ons, taxes), rounded to cents. ``discount_pct`` is 0 for most
  subscribers and a promotion of 5-30% for about a third of them.
* A hidden *dissatisfaction* factor z ~ N(0, 1), never observed. It raises
  ``support_calls_90d`` (Poisson), lowers ``usage_hours_30d`` (Gamma, higher
  on premium plans) and raises the churn risk directly. Together with the
  Bernoulli draw it keeps the problem from being separable: a logistic model
  reaches a ROC AUC of about 0.8.
* ``payment_method`` (card, bank_transfer, paypal, invoice);
  ``late_payments_12m`` is Poisson (at most 12: one bill a month), with a
  higher rate for invoice payers and for a hidden financial strain that also
  raises the churn risk.
* ``churned`` ~ Bernoulli(sigmoid(logit)). The logit is linear in the true
  (pre-masking) features, plus a bump for subscribers in their first 6
  months. The base rate is about 20%. After the label is drawn, values go
  missing as a real feed loses them: ``usage_hours_30d`` ~4%,
  ``support_calls_90d`` ~3% (so it is a nullable ``Int64`` column) and
  ``discount_pct`` ~2%.

Scenarios (named changes that monitoring, validation and tests use):

``none``
    The reference distribution.
``covariate_shift``
    Inputs move: usage falls by 30% and support calls become 1.6x as frequent
    (a service outage season). The label follows the unchanged rule on the
    shifted inputs, so churn rises.
``concept_shift``
    Inputs are exactly those of ``none``; the label rule changes (a
    competitor's cheaper offer: price sensitivity more than triples,
    discounts matter more, long contracts and tenure protect much less,
    support calls stop mattering, and the churn rate rises to ~28%). Only
    realized performance can reveal it: no input moves.
``price_increase``
    ``monthly_fee`` is 20% higher for everyone; churn follows the unchanged
    rule, so it rises with the fee (every subscriber who churns in ``none``
    still churns, and some more do).
``null_column``
    A broken upstream feed: ``usage_hours_30d`` is entirely NaN. Labels are
    those of ``none`` (they were drawn on the true usage).
"""

from __future__ import annotations

import numbers
from typing import NamedTuple

import numpy as np
import pandas as pd

__all__ = ["COLUMNS", "SCENARIOS", "generate"]

SCENARIOS: tuple[str, ...] = ("none", "covariate_shift", "concept_shift", "price_increase", "null_column")
"""Names accepted by the ``scenario`` argument of :func:`generate`."""

MIN_ROWS = 1
MAX_ROWS = 1_000_000
DAYS = 365  # by default snapshots lie in [start, start + 365 days)
MAX_DAYS = 36_500
LABEL_DELAY_DAYS = 30  # churn within 30 days of the snapshot; known when the window closes

AGE_BANDS = ("18-29", "30-44", "45-64", "65+")
GENDERS = ("F", "M")
REGIONS = ("north", "south", "east", "west")
PLANS = ("basic", "standard", "premium")
CONTRACT_TYPES = ("monthly", "annual", "two_year")
PAYMENT_METHODS = ("card", "bank_transfer", "paypal", "invoice")

LIST_PRICE = (9.99, 15.99, 24.99)  # per plan, USD per month
MAX_TENURE = 72

COLUMNS: tuple[str, ...] = (
    "subscriber_id", "snapshot_timestamp", "label_timestamp",
    "tenure_months", "monthly_fee", "plan", "contract_type", "support_calls_90d", "usage_hours_30d",
    "payment_method", "late_payments_12m", "discount_pct", "region",
    "age_band", "gender", "churned",
)
"""The frame's columns, in order."""

_SECONDS_PER_DAY = 86_400

# Independent random streams, one per variable, spawned in this fixed order.
# Appending a stream is safe; reordering changes every dataset.
_STREAMS = (
    "subscriber_id",
    "timestamp",
    "age_band",
    "gender",
    "region",
    "tenure",
    "contract_type",
    "plan",
    "monthly_fee",
    "discount",
    "dissatisfaction",
    "support_calls",
    "usage",
    "payment_method",
    "strain",
    "late_payments",
    "label",
    "missing",
)


class _ChurnRule(NamedTuple):
    """Coefficients of the logistic churn model (per-unit log-odds)."""

    intercept: float
    tenure: float  # per month, tenure capped at 60
    new_subscriber: float  # tenure under 6 months
    contract_type: tuple[float, ...]  # in CONTRACT_TYPES order
    monthly_fee: float  # per USD above 16
    discount: float  # per percentage point
    support_calls: float  # per call, capped at 8
    usage: float  # per hour above 25, usage capped at 80
    late_payments: float  # per late payment, capped at 6
    payment_method: tuple[float, ...]  # in PAYMENT_METHODS order
    plan: tuple[float, ...]  # in PLANS order
    region: tuple[float, ...]  # in REGIONS order
    dissatisfaction: float  # the hidden factor
    strain: float  # the hidden financial strain


_BASE_RULE = _ChurnRule(
    intercept=-1.05,
    tenure=-0.028,
    new_subscriber=0.45,
    contract_type=(0.0, -1.0, -1.7),
    monthly_fee=0.07,
    discount=-0.035,
    support_calls=0.30,
    usage=-0.035,
    late_payments=0.30,
    payment_method=(0.0, -0.15, 0.1, 0.3),
    plan=(0.1, 0.0, -0.1),
    region=(0.0, 0.25, -0.05, 0.05),
    dissatisfaction=0.75,
    strain=0.3,
)

# Concept shift: same inputs, different mechanism. A competitor's cheaper offer: price and
# discounts matter far more, long contracts and tenure protect much less, and support calls no
# longer predict leaving (the competitor, not service trouble, drives churn). A model trained on
# `none` falls from ROC AUC ~0.80 to ~0.72 on such data; one retrained on it reaches ~0.81.
_CONCEPT_RULE = _BASE_RULE._replace(
    intercept=-0.95,
    tenure=-0.005,
    contract_type=(0.0, -0.25, -0.5),
    monthly_fee=0.24,
    discount=-0.08,
    support_calls=0.0,
)


def generate(rows: int, seed: int = 7, scenario: str = "none", start: str = "2025-01-01",
             days: int = DAYS) -> pd.DataFrame:
    """Generate ``rows`` subscriber snapshots.

    Parameters
    ----------
    rows : int
        Number of subscribers (one snapshot each), in ``[1, 1_000_000]``.
    seed : int, default 7
        Non-negative seed for :func:`numpy.random.default_rng`.
    scenario : str, default "none"
        One of :data:`SCENARIOS`; see the module docstring.
    start : str, default "2025-01-01"
        First possible snapshot time, anything :class:`pandas.Timestamp`
        parses. A naive value is taken as UTC; an aware one is converted.
    days : int, default 365
        Length of the snapshot window: snapshots lie in ``[start, start + days)``,
        at least 1, at most 36,500 (as the credit generator's ``days``).

    Returns
    -------
    pandas.DataFrame
        :data:`COLUMNS`, sorted by ``snapshot_timestamp``: ``subscriber_id``
        (int64, unique), ``snapshot_timestamp`` and ``label_timestamp``
        (``datetime64[ns, UTC]``, 30 days apart), the features (integers as
        int64, except ``support_calls_90d``, which is a nullable ``Int64``;
        floats as float64 with NaN for missing; strings as object),
        ``age_band``, ``gender`` and ``churned`` (``"yes"`` or ``"no"``).

    Raises
    ------
    ValueError
        Naming the argument and what it accepts: ``rows`` or ``days`` is not
        an integer in range, ``seed`` is not a non-negative integer,
        ``scenario`` is unknown, or ``start`` is not a timestamp.
    """
    _check_int("rows", rows, MIN_ROWS, MAX_ROWS)
    _check_int("seed", seed, 0, None)
    _check_int("days", days, 1, MAX_DAYS)
    if not isinstance(scenario, str) or scenario not in SCENARIOS:
        raise ValueError(f"scenario must be one of {', '.join(SCENARIOS)}; got {scenario!r}")
    start_ts = _parse_start(start, int(days))
    n = int(rows)
    rng = dict(zip(_STREAMS, np.random.default_rng(int(seed)).spawn(len(_STREAMS)), strict=True))

    # --- who and when ------------------------------------------------------
    # 8-digit ids, unique, in no particular order (ids are assigned at sign-up, not per snapshot).
    subscriber_id = 10_000_000 + rng["subscriber_id"].choice(90_000_000, size=n, replace=False).astype(np.int64)
    offsets = np.sort(rng["timestamp"].integers(0, int(days) * _SECONDS_PER_DAY, size=n))
    snapshot = start_ts + pd.to_timedelta(offsets, unit="s")

    age = _choose_fixed(rng["age_band"], (0.24, 0.28, 0.28, 0.20), n)
    female = rng["gender"].random(n) < 0.5
    region = _choose_fixed(rng["region"], (0.28, 0.24, 0.26, 0.22), n)

    # --- the account -------------------------------------------------------
    tenure_scale = np.array([0.85, 1.0, 1.1, 1.15])[age] * 16.0
    tenure = np.minimum(np.floor(rng["tenure"].gamma(1.3, 1.0, size=n) * tenure_scale), MAX_TENURE).astype(np.int64)
    long_logit = -1.6 + 0.045 * np.minimum(tenure, 48)
    contract = _choose(rng["contract_type"], _softmax(np.column_stack(
        [np.zeros(n), long_logit, long_logit - 0.8])))

    plan = _choose_fixed(rng["plan"], (0.40, 0.40, 0.20), n)
    fee = np.asarray(LIST_PRICE)[plan] * np.exp(0.06 * rng["monthly_fee"].standard_normal(n))
    if scenario == "price_increase":
        fee = fee * 1.2
    fee = np.round(fee, 2)

    discount_draw = rng["discount"].random((2, n))
    discount = np.where(discount_draw[0] < 0.33, np.round((5.0 + 25.0 * discount_draw[1]) * 2) / 2, 0.0)

    # --- behaviour (the hidden dissatisfaction drives calls and usage) -----
    dissatisfaction = rng["dissatisfaction"].standard_normal(n)
    call_rate = 0.7 * np.exp(0.55 * dissatisfaction)
    if scenario == "covariate_shift":
        call_rate = call_rate * 1.6
    support_calls = rng["support_calls"].poisson(call_rate).astype(np.int64)

    usage_mean = (24.0 * np.array([0.8, 1.0, 1.3])[plan] * np.array([1.1, 1.0, 0.95, 0.85])[age]
                  * np.exp(-0.3 * dissatisfaction))
    usage = rng["usage"].gamma(3.0, 1.0, size=n) * usage_mean / 3.0
    if scenario == "covariate_shift":
        usage = usage * 0.7
    usage = np.round(np.minimum(usage, 300.0), 1)

    pay_mix = np.array([[0.45, 0.20, 0.25, 0.10],   # 18-29: card and paypal
                        [0.45, 0.25, 0.18, 0.12],
                        [0.40, 0.30, 0.14, 0.16],
                        [0.34, 0.34, 0.10, 0.22]])  # 65+: bank transfer and invoice
    payment = _choose(rng["payment_method"], pay_mix[age])
    strain = rng["strain"].standard_normal(n)
    late_rate = 0.3 * np.array([1.0, 0.7, 1.0, 1.8])[payment] * np.exp(0.6 * strain)
    late = np.minimum(rng["late_payments"].poisson(late_rate), 12).astype(np.int64)  # one bill a month

    # --- label (on the true values, before anything goes missing) ---------
    rule = _CONCEPT_RULE if scenario == "concept_shift" else _BASE_RULE
    logit = (
        rule.intercept
        + rule.tenure * np.minimum(tenure, 60)
        + rule.new_subscriber * (tenure < 6)
        + np.asarray(rule.contract_type)[contract]
        + rule.monthly_fee * (fee - 16.0)
        + rule.discount * discount
        + rule.support_calls * np.minimum(support_calls, 8)
        + rule.usage * (np.minimum(usage, 80.0) - 25.0)
        + rule.late_payments * np.minimum(late, 6)
        + np.asarray(rule.payment_method)[payment]
        + np.asarray(rule.plan)[plan]
        + np.asarray(rule.region)[region]
        + rule.dissatisfaction * dissatisfaction
        + rule.strain * strain
    )
    churned = rng["label"].random(n) < _sigmoid(logit)

    # --- what the feed delivers --------------------------------------------
    miss = rng["missing"].random((3, n))
    usage_out = np.where(miss[0] < 0.04, np.nan, usage)
    if scenario == "null_column":
        usage_out = np.full(n, np.nan)
    calls_out = pd.array(support_calls, dtype="Int64")
    calls_out[miss[1] < 0.03] = pd.NA
    discount_out = np.where(miss[2] < 0.02, np.nan, discount)

    return pd.DataFrame({
        "subscriber_id": subscriber_id,
        "snapshot_timestamp": snapshot,
        "label_timestamp": snapshot + pd.Timedelta(days=LABEL_DELAY_DAYS),
        "tenure_months": tenure,
        "monthly_fee": fee,
        "plan": _labels(PLANS, plan),
        "contract_type": _labels(CONTRACT_TYPES, contract),
        "support_calls_90d": calls_out,
        "usage_hours_30d": usage_out,
        "payment_method": _labels(PAYMENT_METHODS, payment),
        "late_payments_12m": late,
        "discount_pct": discount_out,
        "region": _labels(REGIONS, region),
        "age_band": _labels(AGE_BANDS, age),
        "gender": _labels(GENDERS, (~female).astype(np.int64)),
        "churned": _labels(("no", "yes"), churned.astype(np.int64)),
    }, columns=list(COLUMNS))


def _check_int(name: str, value: object, low: int, high: int | None) -> None:
    """Raise ``ValueError`` unless ``value`` is an integer in ``[low, high]``."""
    expected = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be {expected}; got {value!r} ({type(value).__name__})")
    if value < low or (high is not None and value > high):
        raise ValueError(f"{name} must be {expected}; got {value!r}")


def _parse_start(start: object, days: int) -> pd.Timestamp:
    """``start`` as a UTC :class:`pandas.Timestamp` (nanoseconds), or a ValueError naming it."""
    expected = "start must be a date or timestamp such as '2025-01-01'"
    if not isinstance(start, (str, pd.Timestamp)):
        raise ValueError(f"{expected}; got {start!r} ({type(start).__name__})")
    try:
        ts = pd.Timestamp(start)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"{expected}; got {start!r} ({exc})") from None
    if pd.isna(ts):
        raise ValueError(f"{expected}; got {start!r}")
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    if ts.value + (days + LABEL_DELAY_DAYS) * _SECONDS_PER_DAY * 10**9 > pd.Timestamp.max.value:
        raise ValueError(f"start + days + {LABEL_DELAY_DAYS} label days must stay before "
                         f"{pd.Timestamp.max.date()}; got start={start!r}, days={days}")
    return ts.as_unit("ns")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically safe logistic function."""
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of a 2-D array."""
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def _choose(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One category index per row from a row-wise probability matrix."""
    cumulative = np.cumsum(probs, axis=1)
    u = rng.random(probs.shape[0])[:, None] * cumulative[:, -1:]
    return np.minimum((u >= cumulative).sum(axis=1), probs.shape[1] - 1).astype(np.int64)


def _choose_fixed(rng: np.random.Generator, probs: tuple[float, ...], n: int) -> np.ndarray:
    """``n`` category indices from one fixed probability vector."""
    cumulative = np.cumsum(probs)
    index = np.searchsorted(cumulative / cumulative[-1], rng.random(n), side="right")
    return np.minimum(index, len(probs) - 1).astype(np.int64)


def _labels(names: tuple[str, ...], index: np.ndarray) -> np.ndarray:
    """Category indices as an object array of their names."""
    return np.array(names, dtype=object)[index]
