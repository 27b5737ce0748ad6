"""The churn project's model: ``model.build: model.py:build_model`` in project.yaml.

A logistic regression on the raw feature columns, with its preprocessing in one
scikit-learn Pipeline so training and serving transform the same way. It is
built only from scikit-learn classes (no function of this file ends up inside
the fitted model), so the fitted pipeline pickles and loads without this file.
"""

from __future__ import annotations

import pandas as pd
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler


def build_model(params: dict) -> Pipeline:
    """An unfitted Pipeline: impute, scale and one-hot encode, then ``LogisticRegression(**params)``.

    ``params`` are the project's ``model.params`` (e.g. ``{"C": 0.5, "max_iter": 1000}``), passed
    to LogisticRegression as they are; ``random_state`` is among them when the project gives one.
    Columns are chosen by dtype when the pipeline is fitted, so the same pipeline takes any
    frame of the project's feature columns: numbers (including pandas' nullable ``Int64`` with
    ``<NA>``) and text (object or ``string`` dtype, with None or NaN for missing).
    """
    numeric = Pipeline([
        ("impute", SimpleImputer(strategy="median")),  # pd.NA and NaN alike: sklearn reads both as missing
        ("scale", StandardScaler()),
    ])
    categorical = Pipeline([
        # Missing text becomes its own category, "missing". missing_values=pd.NA makes the imputer test
        # with pandas.isna, which sees None, NaN and pd.NA alike (with np.nan it would miss None).
        ("impute", SimpleImputer(strategy="constant", fill_value="missing", missing_values=pd.NA)),
        ("encode", OneHotEncoder(handle_unknown="ignore")),  # a category never seen in training: all zeros
    ])
    columns = ColumnTransformer([
        ("numeric", numeric, make_column_selector(dtype_include="number")),
        ("categorical", categorical, make_column_selector(dtype_include=["object", "string"])),
    ], remainder="drop", verbose_feature_names_out=False)
    return Pipeline([("columns", columns), ("model", LogisticRegression(**dict(params)))])
