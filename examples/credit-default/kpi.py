"""The credit-default project's business KPI, judged by monitoring once labels arrive.

Monitoring calls ``net_value(labeled, params)`` with the labeled predictions of a
window (the logged features, ``label``, ``probability``, ``predicted_class``) and
the policy's ``kpi_params``, and reports the numbers it returns beside the
realized metrics.
"""

import pandas as pd


def net_value(labeled: pd.DataFrame, params: dict) -> dict:
    """Lending outcome of the model's decisions: approved loans (predicted class 0) earn ``margin`` of the
    amount when repaid and lose ``loss_given_default`` of it when they default."""
    margin, lgd = float(params.get("margin", 0.08)), float(params.get("loss_given_default", 0.6))
    if "loan_amount" not in labeled.columns:
        raise ValueError("the net_value KPI needs the loan_amount column in the logged features")
    approved = labeled[labeled["predicted_class"] == 0]
    amount = approved["loan_amount"].fillna(0.0)
    defaulted = approved["label"] == 1
    gain, loss = float((amount[~defaulted] * margin).sum()), float((amount[defaulted] * lgd).sum())
    return {"net_value": gain - loss, "net_value_per_loan": (gain - loss) / len(labeled) if len(labeled) else 0.0,
            "approved_default_rate": float(defaulted.mean()) if len(approved) else float("nan")}
