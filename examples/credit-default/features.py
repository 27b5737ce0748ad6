"""The credit-default project's feature code: three features derived from a raw application.

The suite calls ``compute_features(raw)`` with the raw applications and takes
every column ``project.yaml`` declares from what it returns (row for row), then
types them as declared. The raw features pass through; these are added:

* ``loan_to_income`` = loan_amount / income, missing when income is missing or <= 0;
* ``log_income`` = ln(income), missing when income is missing or <= 0;
* ``has_late_payments`` = 1 if any late payment in 12 months, else 0 (missing stays missing).
"""

import numpy as np
import pandas as pd


def compute_features(raw: pd.DataFrame) -> pd.DataFrame:
    out = raw.copy()
    income = pd.to_numeric(raw["income"], errors="coerce").to_numpy(dtype="float64")
    usable = np.isfinite(income) & (income > 0)
    safe = np.where(usable, income, 1.0)  # avoids divide/log warnings on the rows masked below
    loan = pd.to_numeric(raw["loan_amount"], errors="coerce").to_numpy(dtype="float64")
    out["loan_to_income"] = np.where(usable, loan / safe, np.nan)
    out["log_income"] = np.where(usable, np.log(safe), np.nan)
    late = pd.to_numeric(raw["num_late_payments_12m"], errors="coerce")
    out["has_late_payments"] = (late > 0).astype("Int64").where(late.notna())
    return out
