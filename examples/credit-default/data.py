"""Deterministic synthetic consumer-credit default data.

:func:`generate` draws a realistic tabular binary-classification
problem: one row per loan application, with an entity id, an application
timestamp, eight numeric and four categorical features, a sensitive attribute
(``gender``), the ``default`` label and the time at which that label became
known. The same arguments always give the same :class:`pandas.DataFrame`.

Data-generating process (all vectorised NumPy; every variable has its own
random stream spawned from ``numpy.random.default_rng(seed)``, so a scenario
that changes one variable leaves the draws of every other variable intact):

* ``age`` ~ 18 + 62 * Beta(2, 3.2); ``employment_type`` depends on age
  (retirement becomes likely after ~62, unemployment is higher under 25).
* ``income`` is lognormal (median ~50k USD) with an age profile, an
  employment-type effect and a weak effect of ``gender`` (``F`` about 10%
  lower). ``gender`` influences nothing else, so it correlates with the label
  only through income.
* ``home_ownership`` depends on age and income; ``region`` and
  ``loan_purpose`` are drawn from fixed mixes; ``loan_amount`` scales with
  income and purpose.
* ``credit_utilization`` (0..1.2) is higher for lower incomes; the late
  payment count is Poisson with a rate that grows with utilization and with an
  unobserved "financial frailty" that also raises the default risk (this
  hidden factor, plus the Bernoulli draw, keeps the problem from being
  trivially separable: a good model reaches ROC AUC around 0.8).
* ``debt_to_income`` = existing debt ratio + the new loan's burden.
* ``default`` ~ Bernoulli(sigmoid(logit)) where the logit is linear in the
  (true, pre-masking) features plus two non-linear terms: a jump for
  utilization above 0.9 and an extra weight on late payments for borrowers
  under 30. Missing values (``income`` ~2%, ``employment_years`` ~7%,
  ``debt_to_income`` ~3%) are masked *after* the label is drawn, as a real
  feed loses values the outcome did not depend on.

Scenarios (named drifts used by monitoring tests):

``none``
    The reference distribution.
``covariate_shift``
    Inputs move (incomes 25% lower, utilization higher, late payments ~1.6x
    more frequent); the label follows the unchanged rule on the shifted inputs.
``concept_shift``
    Inputs are exactly those of ``none``; the label rule changes
    (utilization matters much less, late payments much more, higher base rate).
``null_column``
    A broken upstream feed: ``debt_to_income`` is entirely NaN.
``wrong_units``
    ``income`` is reported in thousands of USD (divided by 1000).
``new_category``
    ``loan_purpose`` is ``"crypto"`` (never seen in ``none``) for ~15% of
    rows; labels are those of ``none``.
``recession``
    ``covariate_shift`` and ``concept_shift`` at once, as a downturn brings
    both: the inputs move and the label follows the changed rule, so a
    model retrained on recession data beats one trained before it.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

__all__ = [
    "CATEGORICAL_FEATURES",
    "ENTITY_COLUMN",
    "LABEL_COLUMN",
    "LABEL_TIMESTAMP_COLUMN",
    "MAX_DAYS",
    "MAX_ROWS",
    "MIN_ROWS",
    "NUMERIC_FEATURES",
    "SCENARIOS",
    "SENSITIVE_COLUMN",
    "TIMESTAMP_COLUMN",
    "generate",
]

SCENARIOS: tuple[str, ...] = (
    "none",
    "covariate_shift",
    "concept_shift",
    "null_column",
    "wrong_units",
    "new_category",
    "recession",
)
"""Names accepted by the ``scenario`` argument of :func:`generate`."""

MIN_ROWS = 1_000
"""Smallest number of rows :func:`generate` accepts."""
MAX_ROWS = 1_000_000
"""Largest number of rows :func:`generate` accepts."""
MAX_DAYS = 36_500
"""Longest time window in days (keeps nanosecond timestamps far from overflow)."""

LABEL_COLUMN = "default"
ENTITY_COLUMN = "customer_id"
TIMESTAMP_COLUMN = "event_timestamp"
LABEL_TIMESTAMP_COLUMN = "label_timestamp"
SENSITIVE_COLUMN = "gender"

NUMERIC_FEATURES: tuple[str, ...] = (
    "age",
    "income",
    "employment_years",
    "credit_utilization",
    "num_open_accounts",
    "num_late_payments_12m",
    "loan_amount",
    "debt_to_income",
)
"""Numeric model features, in column order."""

CATEGORICAL_FEATURES: tuple[str, ...] = (
    "home_ownership",
    "loan_purpose",
    "region",
    "employment_type",
)
"""Categorical model features (object dtype strings), in column order."""

HOME_OWNERSHIP = ("RENT", "OWN", "MORTGAGE")
LOAN_PURPOSES = (
    "debt_consolidation",
    "credit_card",
    "home_improvement",
    "car",
    "medical",
    "other",
)
REGIONS = ("north", "south", "east", "west")
EMPLOYMENT_TYPES = ("salaried", "self_employed", "unemployed", "retired")
GENDERS = ("F", "M")
NEW_CATEGORY = "crypto"

_NS_PER_DAY = 86_400 * 1_000_000_000
_MEDIAN_INCOME = 50_000.0
_LABEL_DELAY_DAYS = (30, 120)

# Independent random streams, one per variable, spawned in this fixed order.
# Appending a stream is safe; reordering changes every dataset.
_STREAMS = (
    "timestamp",
    "age",
    "employment_type",
    "gender",
    "income",
    "employment_years",
    "home_ownership",
    "region",
    "loan_purpose",
    "loan_amount",
    "credit_utilization",
    "frailty",
    "num_late_payments_12m",
    "num_open_accounts",
    "debt_to_income",
    "label",
    "label_delay",
    "missing",
    "new_category",
)


@dataclass(frozen=True)
class _LabelRule:
    """Coefficients of the logistic default model (per-unit log-odds)."""

    intercept: float
    log_income: float
    utilization: float
    utilization_over_90: float
    late_payments: float
    late_payments_under_30: float
    debt_to_income: float
    age: float
    employment_years: float
    frailty: float
    employment_type: tuple[float, ...]  # in EMPLOYMENT_TYPES order
    home_ownership: tuple[float, ...]  # in HOME_OWNERSHIP order
    loan_purpose: tuple[float, ...]  # in LOAN_PURPOSES order
    region: tuple[float, ...]  # in REGIONS order


_BASE_RULE = _LabelRule(
    intercept=-3.0,
    log_income=-0.7,
    utilization=1.4,
    utilization_over_90=1.0,
    late_payments=0.40,
    late_payments_under_30=0.30,
    debt_to_income=2.0,
    age=-0.02,
    employment_years=-0.045,
    frailty=0.35,
    employment_type=(0.0, 0.25, 0.9, 0.1),
    home_ownership=(0.3, -0.25, 0.0),
    loan_purpose=(0.2, 0.1, -0.2, -0.25, 0.45, 0.25),
    region=(0.0, 0.15, -0.05, 0.0),
)

# Concept shift: same inputs, different mechanism. Utilization barely matters,
# late payments dominate, and the overall rate is higher.
_CONCEPT_RULE = replace(
    _BASE_RULE,
    intercept=-2.1,
    utilization=0.2,
    utilization_over_90=0.1,
    late_payments=1.0,
    late_payments_under_30=0.4,
)


def generate(
    rows: int,
    seed: int = 42,
    scenario: str = "none",
    start: str = "2025-01-01",
    days: int = 180,
) -> pd.DataFrame:
    """Generate a synthetic consumer-credit default dataset.

    Parameters
    ----------
    rows : int
        Number of loan applications, in ``[MIN_ROWS, MAX_ROWS]``.
    seed : int, default 42
        Non-negative seed for :func:`numpy.random.default_rng`. The same
        arguments always return an identical frame.
    scenario : str, default "none"
        One of :data:`SCENARIOS`; see the module docstring for their effects.
    start : str, default "2025-01-01"
        First possible application time, anything :class:`pandas.Timestamp`
        parses. A naive value is taken as UTC; an aware one is converted.
    days : int, default 180
        Length of the application window: event timestamps lie in
        ``[start, start + days)``. At least 1, at most :data:`MAX_DAYS`.

    Returns
    -------
    pandas.DataFrame
        ``rows`` rows sorted by ``event_timestamp``, with columns
        ``customer_id`` (str, unique), ``event_timestamp``
        (``datetime64[ns, UTC]``), the :data:`NUMERIC_FEATURES`, the
        :data:`CATEGORICAL_FEATURES` (object dtype), ``gender`` (``"F"`` or
        ``"M"``), ``default`` (int64, 0 or 1) and ``label_timestamp``
        (``datetime64[ns, UTC]``, 30 to 120 days after ``event_timestamp``).

    Raises
    ------
    ValueError
        If an argument has the wrong type or is out of range, the scenario is
        unknown, ``start`` cannot be parsed as a timestamp, or the window plus
        the label delay would run past the last representable timestamp.

    Examples
    --------
    >>> df = generate(1_000, seed=7)
    >>> df.shape
    (1000, 17)
    >>> bool(df["event_timestamp"].is_monotonic_increasing)
    True
    """
    _check_int("rows", rows, MIN_ROWS, MAX_ROWS)
    _check_int("seed", seed, 0, None)
    _check_int("days", days, 1, MAX_DAYS)
    if not isinstance(scenario, str) or scenario not in SCENARIOS:
        raise ValueError(
            f"scenario must be one of {', '.join(SCENARIOS)}; got {scenario!r}"
        )
    start_ts = _parse_start(start)
    # Python ints: the check itself cannot overflow.
    if start_ts.value + (days + _LABEL_DELAY_DAYS[1]) * _NS_PER_DAY > pd.Timestamp.max.value:
        raise ValueError(
            f"start + days + {_LABEL_DELAY_DAYS[1]} label-delay days must stay before "
            f"{pd.Timestamp.max.date()}; got start={start!r}, days={days}"
        )
    n = int(rows)

    root = np.random.default_rng(int(seed))
    rng = dict(zip(_STREAMS, root.spawn(len(_STREAMS)), strict=True))
    covariate = scenario in ("covariate_shift", "recession")

    # --- time ------------------------------------------------------------
    offsets = np.sort(rng["timestamp"].integers(0, days * _NS_PER_DAY, size=n))
    event_ns = start_ts.value + offsets
    delay_ns = rng["label_delay"].integers(
        _LABEL_DELAY_DAYS[0] * _NS_PER_DAY,
        _LABEL_DELAY_DAYS[1] * _NS_PER_DAY,
        size=n,
        endpoint=True,
    )

    # --- demographics ----------------------------------------------------
    age = np.rint(18.0 + 62.0 * rng["age"].beta(2.0, 3.2, size=n)).astype(np.int64)
    age_f = age.astype(np.float64)

    p_retired = _sigmoid((age_f - 64.0) / 2.5)
    p_unemployed = (1.0 - p_retired) * np.where(age < 25, 0.12, 0.06)
    p_self = (1.0 - p_retired) * 0.15
    p_salaried = 1.0 - p_retired - p_unemployed - p_self
    employment = _choose(
        rng["employment_type"],
        np.column_stack([p_salaried, p_self, p_unemployed, p_retired]),
    )

    female = rng["gender"].random(n) < 0.5

    # --- income (true value, before unit errors or missingness) ----------
    log_income = (
        np.log(_MEDIAN_INCOME)
        + 0.15
        + 0.018 * (age_f - 40.0)
        - 0.0006 * (age_f - 40.0) ** 2
        + np.array([0.0, 0.05, -0.9, -0.35])[employment]
        - 0.10 * female
        + np.array([0.45, 0.7, 0.5, 0.4])[employment] * rng["income"].standard_normal(n)
    )
    if covariate:
        log_income += np.log(0.75)
    income = np.clip(np.exp(log_income), 6_000.0, 2_000_000.0)
    rel_income = np.log(income / _MEDIAN_INCOME)

    # --- employment years -----------------------------------------------
    working = employment <= 1
    employment_years = np.where(
        working,
        np.minimum(rng["employment_years"].gamma(1.6, 4.0, size=n), age_f - 17.0),
        0.0,
    )
    employment_years = np.round(employment_years, 1)

    # --- home ownership, region, purpose --------------------------------
    own_logit = -2.5 + 0.06 * (age_f - 18.0) + 0.3 * rel_income
    mortgage_logit = -1.0 + 0.045 * (age_f - 18.0) + 0.9 * rel_income
    home_logits = np.column_stack([np.zeros(n), own_logit, mortgage_logit])
    home = _choose(rng["home_ownership"], _softmax(home_logits))

    region = _choose_fixed(rng["region"], (0.28, 0.24, 0.26, 0.22), n)
    purpose = _choose_fixed(
        rng["loan_purpose"], (0.38, 0.22, 0.12, 0.12, 0.06, 0.10), n
    )

    # --- loan amount -------------------------------------------------------
    purpose_scale = np.array([0.30, 0.15, 0.35, 0.40, 0.12, 0.18])[purpose]
    loan_amount = income * purpose_scale * np.exp(
        0.45 * rng["loan_amount"].standard_normal(n)
    )
    loan_amount = np.clip(np.round(loan_amount, -2), 1_000.0, 150_000.0)
    loan_to_income = loan_amount / income

    # --- credit behaviour --------------------------------------------------
    util_shift = 0.6 if covariate else 0.0
    utilization = 1.2 * _sigmoid(
        -0.4
        + 1.1 * rng["credit_utilization"].standard_normal(n)
        - 0.45 * rel_income
        + util_shift
    )
    utilization = np.round(utilization, 4)

    frailty = rng["frailty"].standard_normal(n)
    late_rate = 0.25 * np.exp(1.6 * (utilization - 0.4) + 0.7 * frailty - 0.2 * rel_income)
    if covariate:
        late_rate *= 1.6
    late_payments = rng["num_late_payments_12m"].poisson(late_rate).astype(np.int64)

    open_accounts = rng["num_open_accounts"].poisson(
        2.0 + 0.06 * (age_f - 18.0) + 0.5 * np.clip(rel_income, -1.0, 2.0) + 0.5
    ).astype(np.int64)

    debt_to_income = (
        rng["debt_to_income"].beta(2.2, 7.0, size=n)
        + 0.25 * loan_to_income
        + 0.1 * np.clip(utilization - 0.5, 0.0, None)
    )
    debt_to_income = np.round(np.minimum(debt_to_income, 3.0), 4)

    # --- label -------------------------------------------------------------
    rule = _CONCEPT_RULE if scenario in ("concept_shift", "recession") else _BASE_RULE
    late_capped = np.minimum(late_payments, 8).astype(np.float64)
    logit = (
        rule.intercept
        + rule.log_income * rel_income
        + rule.utilization * utilization
        + rule.utilization_over_90 * (utilization > 0.9)
        + rule.late_payments * late_capped
        + rule.late_payments_under_30 * late_capped * (age < 30)
        + rule.debt_to_income * (debt_to_income - 0.35)
        + rule.age * (age_f - 40.0)
        + rule.employment_years * np.minimum(employment_years, 20.0)
        + rule.frailty * frailty
        + np.asarray(rule.employment_type)[employment]
        + np.asarray(rule.home_ownership)[home]
        + np.asarray(rule.loan_purpose)[purpose]
        + np.asarray(rule.region)[region]
    )
    label = (rng["label"].random(n) < _sigmoid(logit)).astype(np.int64)

    # --- what the feed delivers -------------------------------------------
    miss = rng["missing"].random((3, n))
    income_out = np.round(income, -2)
    income_out[miss[0] < 0.02] = np.nan
    employment_years[miss[1] < np.where(employment == 1, 0.13, 0.06)] = np.nan
    debt_to_income[miss[2] < 0.03] = np.nan

    if scenario == "wrong_units":
        income_out = income_out / 1000.0
    if scenario == "null_column":
        debt_to_income = np.full(n, np.nan)

    purpose_names = np.array(LOAN_PURPOSES + (NEW_CATEGORY,), dtype=object)
    if scenario == "new_category":
        purpose = np.where(
            rng["new_category"].random(n) < 0.15, len(LOAN_PURPOSES), purpose
        )

    customer_id = np.char.add("C", np.char.zfill(np.arange(1, n + 1).astype("U7"), 7))

    columns: dict[str, object] = {
        ENTITY_COLUMN: pd.array(customer_id.astype(object), dtype=object),
        TIMESTAMP_COLUMN: pd.to_datetime(event_ns, unit="ns", utc=True),
        "age": age,
        "income": income_out,
        "employment_years": employment_years,
        "credit_utilization": utilization,
        "num_open_accounts": open_accounts,
        "num_late_payments_12m": late_payments,
        "loan_amount": loan_amount,
        "debt_to_income": debt_to_income,
        "home_ownership": _labels(HOME_OWNERSHIP, home),
        "loan_purpose": pd.array(purpose_names[purpose], dtype=object),
        "region": _labels(REGIONS, region),
        "employment_type": _labels(EMPLOYMENT_TYPES, employment),
        SENSITIVE_COLUMN: _labels(GENDERS, (~female).astype(np.int64)),
        LABEL_COLUMN: label,
        LABEL_TIMESTAMP_COLUMN: pd.to_datetime(event_ns + delay_ns, unit="ns", utc=True),
    }
    return pd.DataFrame(columns)


def _check_int(name: str, value: object, low: int, high: int | None) -> None:
    """Raise ``ValueError`` unless ``value`` is an integer in ``[low, high]``."""
    expected = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be {expected}; got {value!r} ({type(value).__name__})")
    if value < low or (high is not None and value > high):
        raise ValueError(f"{name} must be {expected}; got {value!r}")


def _parse_start(start: object) -> pd.Timestamp:
    """Parse ``start`` into a UTC :class:`pandas.Timestamp` or raise ``ValueError``."""
    expected = "start must be a date or timestamp such as '2025-01-01'"
    try:
        ts = pd.Timestamp(start)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"{expected}; got {start!r} ({exc})") from None
    if ts is pd.NaT or pd.isna(ts):
        raise ValueError(f"{expected}; got {start!r}")
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.as_unit("ns")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically safe logistic function."""
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of a 2-D array."""
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def _choose(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """Draw one category index per row from a row-wise probability matrix."""
    cumulative = np.cumsum(probs, axis=1)
    u = rng.random(probs.shape[0])[:, None] * cumulative[:, -1:]
    index = (u >= cumulative).sum(axis=1)
    return np.minimum(index, probs.shape[1] - 1).astype(np.int64)


def _choose_fixed(rng: np.random.Generator, probs: tuple[float, ...], n: int) -> np.ndarray:
    """Draw ``n`` category indices from one fixed probability vector."""
    cumulative = np.cumsum(probs)
    index = np.searchsorted(cumulative / cumulative[-1], rng.random(n), side="right")
    return np.minimum(index, len(probs) - 1).astype(np.int64)


def _labels(names: tuple[str, ...], index: np.ndarray) -> pd.arrays.NumpyExtensionArray:
    """Map category indices to an object-dtype array of their names."""
    return pd.array(np.array(names, dtype=object)[index], dtype=object)
