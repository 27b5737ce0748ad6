"""Online serving end to end: predictor, transformer, splitter, request log and shadow on real local servers.

Two module-scoped topologies (``LocalServing``: two predictor versions, the
splitter, the transformer), one per example project, each over features
built, materialized and trained on from the project's generated data, with
the session's real S3 and MLflow: credit-default (string ids, a gradient
boosted model over hook-computed features) and churn (integer ids, a
logistic-regression Pipeline over the raw columns). Every request goes over
HTTP to 127.0.0.1; the expectations are computed in-process from the same
registered model files and the same Feast definitions. Tests of a serving
capability run on both (``any_served``); tests of a credit field's refusal
stay on credit.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mlops.errors import ModelIntegrityError
from mlops.features import store as feature_store
from mlops.features.definitions import FEATURE_TIMESTAMP
from mlops.features.engineering import compute_features
from mlops.platform.local import free_ports
from mlops.platform.storage import ObjectStore
from mlops.project import Project
from mlops.registry import model_files
from mlops.serving import request_log, routing
from mlops.serving.http_server import VERSION_HEADER
from mlops.serving.local import LocalServing
from mlops.serving.predictor import decision_threshold
from tests.projects import CHURN, CREDIT, generate_churn_data, generate_credit_data, renamed

pytestmark = pytest.mark.platform

MODEL = "serving-tests"  # the credit-default example, renamed for this module
CHURN_MODEL = "serving-churn"  # the churn example, renamed for this module
GATE_THRESHOLD = 0.3  # the credit-default gate's decision threshold
CHURN_THRESHOLD = 0.2  # the churn gate's
ENTITY_KEY = CREDIT.entity.key  # customer_id: string ids
CHURN_KEY = CHURN.entity.key  # subscriber_id: integer ids
FEATURE_NAMES = CREDIT.features.names
NUMERIC_FEATURES = CREDIT.features.of_type("float", "integer")
CATEGORICAL_FEATURES = CREDIT.features.of_type("string")
MAX_BODY_BYTES = 8 * 1024 * 1024  # the servers' default body limit
MAX_ROWS = 10_000  # the predictor's default row limit
JSON = {"content-type": "application/json"}
TIMEOUT = 30.0


# -- the topology ------------------------------------------------------------------------

@dataclass
class Served:
    """What a topology's tests share: the running servers and the data behind them."""

    project: Project  # the renamed example served (its model is project.names.model)
    threshold: float  # its gate's decision threshold
    local: LocalServing
    store: ObjectStore
    v1: str
    v2: str
    raw: pd.DataFrame  # the generated raw rows the features were built from
    features: pd.DataFrame  # the feature table computed from them (what was snapshotted and materialized)
    test_rows: pd.DataFrame  # held-out point-in-time rows (feature columns with real missing values)
    window: tuple  # (start, end) materialized into the online store
    work: Path
    # Which features the round trip blanks: (numeric, numeric, numeric), (text, text, text), a text for an unseen value
    blanks: tuple
    _loaded: dict = field(default_factory=dict)

    @property
    def model(self) -> str:
        return self.project.names.model

    @property
    def key(self) -> str:
        return self.project.entity.key

    @property
    def fs(self) -> feature_store.ProjectStore:
        if "fs" not in self._loaded:
            self._loaded["fs"] = feature_store.open_store(feature_store.FeatureStoreConfig.from_env(), self.project)
        return self._loaded["fs"]

    @property
    def urls(self) -> dict[str, str]:
        return self.local.status()["urls"]

    @property
    def transformer(self) -> str:
        return self.urls["transformer"]

    def predictor(self, version: str) -> str:
        return self.urls[f"predictor v{version}"]

    def loaded(self, version: str) -> model_files.LoadedModel:
        """The registered files of ``version``, fetched, verified and loaded in this process."""
        if version not in self._loaded:
            ref = model_files.resolve_model(self.model, version)
            path = model_files.fetch_model(ref, self.work / "in-process-models", self.store)
            self._loaded[version] = model_files.load_model(path, ref.digest)
        return self._loaded[version]

    def recent_ids(self, n: int, with_missing: int = 0) -> list:
        """Entities whose features lie well inside the materialized window; some with missing values.

        As the join key holds them: str for credit, int for churn (JSON integers, not NumPy's).
        """
        table = self.features
        recent = table[table[FEATURE_TIMESTAMP] > pd.Timestamp(self.window[0]) + pd.Timedelta(days=2)]
        numeric = list(self.project.features.of_type("float", "integer"))
        missing = recent[recent[numeric].isna().any(axis=1)]
        ids = missing[self.key].head(with_missing).tolist()
        ids += [c for c in recent[self.key].iloc[::-1].tolist() if c not in ids][: n - len(ids)]
        assert len(ids) == n and len(missing) >= with_missing
        return ids

    # the credit tests' name for it
    recent_customers = recent_ids


def _topology(platform, tmp_path_factory, train_versions, example: Project, name: str, raw: pd.DataFrame,
              variants: tuple, threshold: float, blanks: tuple):
    work = tmp_path_factory.mktemp(name)
    store = ObjectStore(platform.s3_settings())
    project = renamed(example, work, name)  # its own model, Feast project and request log
    versions, features = train_versions(project, raw, work, variants)
    routing.write_routing(store, name, routing.Routing())
    local = LocalServing(project)
    try:
        local.up(versions[0], port=free_ports(["transformer"])["transformer"], progress=lambda *_: None)
        local.deploy(versions[1])
        yield Served(project, threshold, local, store, versions[0], versions[1], raw, compute_features(project, raw),
                     pd.read_parquet(work / "test.parquet"), features.materialized, work, blanks)
    finally:
        local.down()
        routing.write_routing(store, name, routing.Routing())


def _model_name(request, example: str) -> str:
    """The model a module serves an example as: a module importing these fixtures names its own
    (``SERVED_MODELS``), so no two modules share a registered model, a Feast project or a request log."""
    return getattr(request.module, "SERVED_MODELS", {"credit-default": MODEL, "churn": CHURN_MODEL})[example]


@pytest.fixture(scope="module")
def served(platform, tmp_path_factory, train_versions, request):
    """The credit-default topology."""
    yield from _topology(platform, tmp_path_factory, train_versions, CREDIT, _model_name(request, "credit-default"),
                         generate_credit_data(4_000, seed=41),
                         ({"max_iter": 5}, {"max_iter": 15}), GATE_THRESHOLD,
                         (("income", "debt_to_income", "employment_years"),
                          ("region", "employment_type", "home_ownership"), "loan_purpose"))


@pytest.fixture(scope="module")
def churn_served(platform, tmp_path_factory, train_versions, request):
    """The churn topology: integer subscriber ids, yes/no labels, a Pipeline from the project's build hook."""
    yield from _topology(platform, tmp_path_factory, train_versions, CHURN, _model_name(request, "churn"),
                         generate_churn_data(2_000, seed=41), ({"C": 0.05}, {"C": 1.0}), CHURN_THRESHOLD,
                         (("monthly_fee", "usage_hours_30d", "tenure_months"), ("region", "plan", "payment_method"),
                          "contract_type"))


@pytest.fixture(scope="module", params=["credit-default", "churn"])
def any_served(request):
    """Each example project's topology in turn, for tests of a capability rather than of a credit field."""
    return request.getfixturevalue("served" if request.param == "credit-default" else "churn_served")


@pytest.fixture(scope="module")
def fs(served):
    return served.fs


# -- helpers -------------------------------------------------------------------------------

GOOD_ROW = {name: 1.0 for name in NUMERIC_FEATURES} | {
    "home_ownership": "RENT", "loan_purpose": "credit_card", "region": "south", "employment_type": "salaried"}
assert set(GOOD_ROW) == set(FEATURE_NAMES)
CHURN_GOOD_ROW = {name: 1.0 for name in CHURN.features.of_type("float", "integer")} | {
    "plan": "basic", "contract_type": "monthly", "payment_method": "card", "region": "south"}
assert set(CHURN_GOOD_ROW) == set(CHURN.features.names)


def good_row(project: Project) -> dict:
    return GOOD_ROW if project.entity.key == ENTITY_KEY else CHURN_GOOD_ROW


def v1_url(base: str, name: str = MODEL) -> str:
    return f"{base}/v1/models/{name}:predict"


def v2_url(base: str, name: str = MODEL) -> str:
    return f"{base}/v2/models/{name}/infer"


def v2_inputs(rows: list[dict], project: Project = CREDIT) -> list[dict]:
    """One V2 tensor per feature (FP64 or BYTES, shape [n]), nulls for missing values."""
    text = set(project.features.of_type("string"))
    return [{"name": name, "datatype": "BYTES" if name in text else "FP64", "shape": [len(rows)],
             "data": [row[name] for row in rows]} for name in project.features.names]


def instances(frame: pd.DataFrame, project: Project = CREDIT) -> list[dict]:
    """Feature rows as a JSON client sends them: null for missing, integer features as JSON integers."""
    kinds = dict(project.features.columns)
    out = []
    for record in frame[list(kinds)].to_dict("records"):
        row = {}
        for name, value in record.items():
            if value is None or pd.isna(value):
                row[name] = None
            elif kinds[name] == "string":
                row[name] = str(value)
            elif kinds[name] == "integer":
                row[name] = int(value)
            else:
                row[name] = float(value)
        out.append(row)
    return out


def in_process_frame(rows: list[dict], project: Project = CREDIT) -> pd.DataFrame:
    """The same rows as an in-process caller builds them: float64 (NaN) and text (None)."""
    frame = pd.DataFrame.from_records(rows, columns=list(project.features.names))
    for name in project.features.of_type("float", "integer"):
        frame[name] = frame[name].astype("float64")
    for name in project.features.of_type("string"):
        frame[name] = frame[name].astype(object).where(frame[name].notna(), None)
    return frame


def error_of(resp: httpx.Response) -> str:
    try:
        return str(resp.json().get("error", resp.text))
    except (ValueError, AttributeError):
        return resp.text


def metric(text: str, name: str, **labels: str) -> float:
    """The value of the sample ``name`` whose labels include ``labels`` (0 when there is none)."""
    found = [s.value for family in text_string_to_metric_families(text) for s in family.samples
             if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) <= 1, f"{name}{labels} matches {len(found)} samples"
    return found[0] if found else 0.0


def metrics(base: str) -> str:
    resp = httpx.get(f"{base}/metrics", timeout=TIMEOUT)
    assert resp.status_code == 200
    return resp.text


def wait_for(condition, what: str, timeout_s: float = 15.0, interval_s: float = 0.2):
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)


def ask_transformer(served: Served, ids: list, request_id: str | None = None) -> httpx.Response:
    headers = {"x-request-id": request_id} if request_id else {}
    return httpx.post(v1_url(served.transformer, served.model), json={"instances": [{served.key: c} for c in ids]},
                      headers=headers, timeout=TIMEOUT)


def ids_v2(served: Served, ids: list) -> dict:
    """A V2 request of entity ids: a BYTES tensor for a string key, INT64 for an integer one."""
    datatype = "INT64" if served.project.entity.type == "integer" else "BYTES"
    return {"inputs": [{"name": served.key, "datatype": datatype, "shape": [len(ids)], "data": ids}]}


def logged(served: Served, expected_rows: dict[str, int], timeout_s: float = 15.0) -> pd.DataFrame:
    """The request log's rows of these request ids, once all of them are on S3 (the log flushes every 2 s)."""
    def complete():
        log = request_log.read_log(served.store, served.model)
        if log.empty:
            return None
        rows = log[log["request_id"].isin(list(expected_rows))]
        counts = rows["request_id"].value_counts()
        return rows if all(counts.get(r, 0) >= n for r, n in expected_rows.items()) else None

    return wait_for(complete, f"request log rows {expected_rows}", timeout_s, 0.5)


def shadow_active(served: Served, version: str | None) -> bool:
    """The transformer mirrors to ``version`` (None: to nothing), as its /metrics says."""
    active = {s.labels["model_version"] for f in text_string_to_metric_families(metrics(served.transformer))
              for s in f.samples if s.name == "mlops_shadow_target_info" and s.value == 1.0}
    return active == ({version} if version else set())


def reset_routing(served: Served) -> None:
    routing.write_routing(served.store, served.model, routing.Routing())
    wait_for(lambda: shadow_active(served, None), "the transformer to drop the shadow")


def good_request_is_answered(base: str, served: Served | None = None) -> None:
    project, model = (served.project, served.model) if served else (CREDIT, MODEL)
    resp = httpx.post(v1_url(base, model), json={"instances": [good_row(project)]}, timeout=TIMEOUT)
    assert resp.status_code == 200, resp.text
    assert 0.0 <= resp.json()["predictions"][0]["probability"] <= 1.0


# -- 1. round trips equal in-process predictions ---------------------------------------------

@pytest.mark.parametrize("which", ["v1", "v2"])
def test_predictor_round_trips_equal_in_process_predictions(any_served, which):
    served, project = any_served, any_served.project
    names, numeric = project.features.names, list(project.features.of_type("float", "integer"))
    (n1, n2, n3), (t1, t2, t3), unseen = served.blanks
    version = getattr(served, which)
    base = served.predictor(version)
    with_missing = served.test_rows[served.test_rows[numeric].isna().any(axis=1)]
    rows = instances(pd.concat([served.test_rows.head(9), with_missing.head(3)]), project)
    assert any(v is None for row in rows[9:] for v in row.values())  # held-out rows that miss values of their own
    rows[0][n1] = None  # missing numeric values...
    rows[1][n2] = rows[1][n3] = None
    rows[2][t1] = None  # ...and missing text
    rows[3][t2] = rows[3][t3] = None
    rows[4] = {name: None for name in names}  # nothing known at all
    rows[5][unseen] = "a value never seen in training"

    loaded = served.loaded(version)
    threshold = decision_threshold(served.project)
    assert threshold == served.threshold
    expected = loaded.estimator.predict_proba(in_process_frame(rows, project))[:, 1]
    expected_classes = (expected >= threshold).astype(int).tolist()

    url = v1_url(base, served.model)
    by_objects = httpx.post(url, json={"instances": rows}, timeout=TIMEOUT)
    by_values = httpx.post(url, json={"instances": [[row[n] for n, _ in loaded.columns] for row in rows]},
                           timeout=TIMEOUT)
    for resp in (by_objects, by_values):
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["model_version"] == version and resp.headers[VERSION_HEADER] == version
        got = np.array([p["probability"] for p in body["predictions"]])
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
        assert [p["class"] for p in body["predictions"]] == expected_classes

    v2 = httpx.post(v2_url(base, served.model), json={"id": "round-trip", "inputs": v2_inputs(rows, project)},
                    timeout=TIMEOUT)
    assert v2.status_code == 200, v2.text
    body = v2.json()
    assert (body["id"], body["model_version"], v2.headers[VERSION_HEADER]) == ("round-trip", version, version)
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs["probability"]["shape"] == [len(rows)] and outputs["probability"]["datatype"] == "FP64"
    np.testing.assert_allclose(outputs["probability"]["data"], expected, rtol=0, atol=1e-12)
    assert outputs["class"]["data"] == expected_classes


def test_predictor_metadata_lists_the_inputs_and_it_is_ready(any_served):
    served, project = any_served, any_served.project
    base = served.predictor(served.v1)
    meta = httpx.get(f"{base}/v2/models/{served.model}", timeout=TIMEOUT)
    assert meta.status_code == 200, meta.text
    inputs = {i["name"]: i["datatype"] for i in meta.json()["inputs"]}
    text = project.features.of_type("string")
    assert inputs == {n: "BYTES" if n in text else "FP64" for n in project.features.names}
    assert [i["name"] for i in meta.json()["inputs"]] == [n for n, _ in served.loaded(served.v1).columns]
    assert {o["name"] for o in meta.json()["outputs"]} == {"probability", "class"}
    assert httpx.get(f"{base}/v2/health/ready", timeout=TIMEOUT).status_code == 200
    assert httpx.get(f"{base}/v2/models/{served.model}/ready", timeout=TIMEOUT).status_code == 200


# -- 2. bad requests get a 4xx that names the problem ------------------------------------------

def _without(row: dict, name: str) -> dict:
    return {k: v for k, v in row.items() if k != name}


def _v2(**changes) -> dict:
    """A one-row V2 body with some tensors changed (``name=None`` drops it, ``extra=[...]`` adds tensors)."""
    inputs = []
    for tensor in v2_inputs([GOOD_ROW]):
        change = changes.get(tensor["name"], {})
        if change is not None:
            inputs.append(tensor | change)
    return {"inputs": inputs + changes.get("extra", [])}


def _big_body(size: int) -> bytes:
    row = json.dumps(GOOD_ROW).encode()
    count = size // (len(row) + 1) + 1
    return b'{"instances": [' + b",".join([row] * count) + b"]}"


def _chunks(body: bytes, size: int = 256 * 1024):
    for i in range(0, len(body), size):
        yield body[i:i + size]


# (id, protocol, request kwargs (or a callable giving them), status, a regex the error message must match)
PREDICTOR_BAD_REQUESTS = [
    ("text-plain-content-type", "v1", {"content": json.dumps({"instances": [GOOD_ROW]}).encode(),
                                       "headers": {"content-type": "text/plain"}}, 415,
     r"Content-Type 'text/plain': .*application/json"),
    ("non-json-body", "v1", {"content": b"{instances: [1, 2", "headers": JSON}, 400,
     r"Unrecognized request format: .*line 1 column 2"),
    ("json-array-body", "v1", {"json": [GOOD_ROW]}, 400, r"must be a JSON object with \"instances\", got list"),
    ("no-instances", "v1", {"json": {"rows": [GOOD_ROW]}}, 400, r"needs \"instances\".*\(found keys: rows\)"),
    ("instances-not-a-list", "v1", {"json": {"instances": GOOD_ROW}}, 400, r"\"instances\" to be a list"),
    ("empty-instances", "v1", {"json": {"instances": []}}, 400, r"\"instances\" must be a non-empty list"),
    ("missing-field", "v1", {"json": {"instances": [GOOD_ROW, _without(GOOD_ROW, "income")]}}, 400,
     r"instance 1: missing income"),
    ("unknown-field", "v1", {"json": {"instances": [GOOD_ROW | {"shoe_size": 42}]}}, 400,
     r"instance 0: unknown shoe_size"),
    ("problems-of-several-instances", "v1",
     {"json": {"instances": [_without(GOOD_ROW, "age"), GOOD_ROW | {"x": 1}]}}, 400,
     r"instance 0: missing age; instance 1: unknown x"),
    ("numeric-string-for-number", "v1", {"json": {"instances": [GOOD_ROW | {"income": "52000"}]}}, 400,
     r"instance 0: income must be a number or null, got str '52000'"),
    ("boolean-for-number", "v1", {"json": {"instances": [GOOD_ROW, GOOD_ROW | {"age": True}]}}, 400,
     r"instance 1: age must be a number or null, got bool True"),
    ("number-for-text", "v1", {"json": {"instances": [GOOD_ROW | {"region": 3}]}}, 400,
     r"instance 0: region must be text or null, got int 3"),
    ("list-for-text", "v1", {"json": {"instances": [GOOD_ROW | {"region": ["south"]}]}}, 400,
     r"region must be text or null, got list"),
    ("value-row-of-wrong-length", "v1", {"json": {"instances": [[1.0, 2.0]]}}, 400,
     rf"each instance must list {len(FEATURE_NAMES)} values in the order age, .*: instance 0 has 2 values, "
     rf"expected {len(FEATURE_NAMES)}"),
    ("objects-and-value-rows-mixed", "v1", {"json": {"instances": [GOOD_ROW, list(GOOD_ROW.values())]}}, 400,
     r"not a mix"),
    ("too-many-rows", "v1", {"json": {"instances": [{}] * (MAX_ROWS + 1)}}, 413,
     rf"{MAX_ROWS + 1} instances in one request; at most {MAX_ROWS} are accepted"),
    ("v2-missing-input", "v2", {"json": _v2(income=None)}, 400, r"missing inputs: income"),
    ("v2-unknown-input", "v2",
     {"json": _v2(extra=[{"name": "shoe_size", "datatype": "FP64", "shape": [1], "data": [42.0]}])}, 400,
     r"unknown inputs: shoe_size"),
    ("v2-repeated-input", "v2",
     {"json": _v2(extra=[{"name": "age", "datatype": "FP64", "shape": [1], "data": [42.0]}])}, 400,
     r"repeated inputs: age"),
    ("v2-no-inputs", "v2", {"json": {"inputs": []}}, 400, r"needs \"inputs\": one tensor per field"),
    ("v2-body-without-inputs", "v2", {"json": {"instances": [GOOD_ROW]}}, 422, r"inputs: Field required"),
    ("v2-text-datatype-for-numeric-input", "v2", {"json": _v2(income={"datatype": "BYTES", "data": ["52000"]})}, 400,
     r"input income \(double\) has datatype BYTES, expected a numeric type"),
    ("v2-numeric-datatype-for-text-input", "v2", {"json": _v2(region={"datatype": "FP64", "data": [3.0]})}, 400,
     r"input region \(string\) has datatype FP64, expected BYTES"),
    ("v2-number-in-text-tensor", "v2", {"json": _v2(region={"data": [3]})}, 400,
     r"row 0: region must be text or null, got int 3"),
    ("v2-shape-and-data-disagree", "v2", {"json": _v2(income={"shape": [2]})}, 400,
     r"input income declares shape \[2\] but carries 1 values"),
    ("v2-inputs-with-different-row-counts", "v2", {"json": _v2(income={"shape": [2], "data": [1.0, 2.0]})}, 400,
     r"input income has 2 rows, others have 1"),
    ("v2-nested-data-of-wrong-form", "v2", {"json": _v2(income={"data": [[1.0, 2.0]]})}, 400,
     r"input income declares shape \[1\] but carries nested or non-list data"),
    ("v2-matrix-shape", "v2", {"json": _v2(income={"shape": [1, 2], "data": [[1.0, 2.0]]})}, 400,
     r"input income has shape \[1, 2\], expected \[n\] or \[n, 1\]"),
    ("oversized-body-with-content-length", "v1",
     lambda: {"content": _big_body(MAX_BODY_BYTES + 100_000), "headers": JSON}, 413,
     rf"request body of \d+ bytes is over the limit of {MAX_BODY_BYTES} bytes"),
    ("oversized-body-chunked", "v1",
     lambda: {"content": _chunks(_big_body(MAX_BODY_BYTES + 100_000)), "headers": JSON}, 413,
     rf"request body is over the limit of {MAX_BODY_BYTES} bytes"),
    ("unknown-model-v1", "v1-other-model", {"json": {"instances": [GOOD_ROW]}}, 404,
     r"no-such-model does not exist"),
    ("unknown-model-v2", "v2-other-model", {"json": _v2()}, 404, r"no-such-model does not exist"),
]


def _predictor_url(base: str, protocol: str) -> str:
    return {"v1": v1_url(base), "v2": v2_url(base), "v1-other-model": v1_url(base, "no-such-model"),
            "v2-other-model": v2_url(base, "no-such-model")}[protocol]


@pytest.mark.parametrize("protocol, request_kwargs, status, message",
                         [pytest.param(*case[1:], id=case[0]) for case in PREDICTOR_BAD_REQUESTS])
def test_predictor_answers_a_bad_request_with_a_4xx_naming_the_problem(served, protocol, request_kwargs, status,
                                                                        message):
    base = served.predictor(served.v1)
    kwargs = request_kwargs() if callable(request_kwargs) else request_kwargs
    resp = httpx.post(_predictor_url(base, protocol), timeout=TIMEOUT, **kwargs)
    assert 400 <= resp.status_code < 500, f"{resp.status_code}: {resp.text[:500]}"
    assert resp.status_code == status, resp.text[:500]
    assert re.search(message, error_of(resp)), error_of(resp)
    good_request_is_answered(base)



# -- transformer: bad requests ----------------------------------------------------------------

def _ids_v2(data, datatype="BYTES", name=ENTITY_KEY, shape=None) -> dict:
    return {"inputs": [{"name": name, "datatype": datatype, "shape": shape or [len(data)], "data": data}]}


TRANSFORMER_BAD_REQUESTS = [
    ("empty-instances", "v1", {"json": {"instances": []}}, 400, r"non-empty list of objects"),
    ("missing-customer-id", "v1", {"json": {"instances": [{"id": "C0000001"}]}}, 400,
     r"instance 0 must be an object with exactly the field 'customer_id'"),
    ("extra-fields", "v1", {"json": {"instances": [{ENTITY_KEY: "C0000001", "income": 52000.0}]}}, 400,
     r"exactly the field 'customer_id'; features come from the feature store"),
    ("non-string-id", "v1", {"json": {"instances": [{ENTITY_KEY: "C0000001"}, {ENTITY_KEY: 3990}]}}, 400,
     r"customer_id must be a non-empty string \(rows \[1\]\)"),
    ("blank-id", "v1", {"json": {"instances": [{ENTITY_KEY: "  "}]}}, 400, r"customer_id must be a non-empty string"),
    ("unknown-customer", "v1", {"json": {"instances": [{ENTITY_KEY: "C9999999"}]}}, 422,
     r"no online features for customer_id C9999999: unknown customer"),
    ("v2-wrong-input-name", "v2", {"json": _ids_v2(["C0000001"], name="customer")}, 400,
     r"needs exactly one input, 'customer_id' .*got \['customer'\]"),
    ("v2-wrong-datatype", "v2", {"json": _ids_v2([1.0], datatype="FP64")}, 400,
     r"input 'customer_id' must be a BYTES tensor of shape \[n\], got FP64"),
    ("v2-int64-tensor-for-a-string-key", "v2", {"json": _ids_v2([3990], datatype="INT64")}, 400,
     r"input 'customer_id' must be a BYTES tensor of shape \[n\], got INT64"),
]

# The churn project's key is an integer: ids are JSON integers (V1) or an INT64 tensor (V2), nothing else.
WHOLE_NUMBER = r"subscriber_id must be a whole number \(a 64-bit integer id\)"
CHURN_TRANSFORMER_BAD_REQUESTS = [
    ("string-id-for-an-integer-key", "v1", {"json": {"instances": [{CHURN_KEY: "10000001"}]}}, 400,
     WHOLE_NUMBER + r" \(rows \[0\]\)"),
    ("text-id", "v1", {"json": {"instances": [{CHURN_KEY: 10000001}, {CHURN_KEY: "S1"}]}}, 400,
     WHOLE_NUMBER + r" \(rows \[1\]\)"),
    ("float-id", "v1", {"json": {"instances": [{CHURN_KEY: 10000001.0}]}}, 400, WHOLE_NUMBER + r" \(rows \[0\]\)"),
    ("fractional-id", "v1", {"json": {"instances": [{CHURN_KEY: 10000001.5}]}}, 400, WHOLE_NUMBER),
    ("bool-id", "v1", {"json": {"instances": [{CHURN_KEY: 10000001}, {CHURN_KEY: True}]}}, 400,
     WHOLE_NUMBER + r" \(rows \[1\]\)"),
    ("null-id", "v1", {"json": {"instances": [{CHURN_KEY: None}]}}, 400, WHOLE_NUMBER),
    ("id-beyond-64-bits", "v1", {"json": {"instances": [{CHURN_KEY: 2 ** 63}]}}, 400, WHOLE_NUMBER),
    ("missing-subscriber-id", "v1", {"json": {"instances": [{ENTITY_KEY: 10000001}]}}, 400,
     r"instance 0 must be an object with exactly the field 'subscriber_id'"),
    ("unknown-subscriber", "v1", {"json": {"instances": [{CHURN_KEY: 99999999}]}}, 422,
     r"no online features for subscriber_id 99999999: unknown subscriber"),
    ("v2-bytes-tensor-for-an-integer-key", "v2", {"json": _ids_v2(["10000001"], name=CHURN_KEY)}, 400,
     r"input 'subscriber_id' must be a INT64 tensor of shape \[n\], got BYTES"),
    ("v2-fp64-tensor-for-an-integer-key", "v2", {"json": _ids_v2([10000001.0], datatype="FP64", name=CHURN_KEY)},
     400, r"input 'subscriber_id' must be a INT64 tensor of shape \[n\], got FP64"),
    ("v2-bool-tensor", "v2", {"json": _ids_v2([True], datatype="BOOL", name=CHURN_KEY)}, 400,
     r"input 'subscriber_id' must be a INT64 tensor of shape \[n\], got BOOL"),
    ("v2-wrong-input-name", "v2", {"json": _ids_v2([10000001], datatype="INT64", name=ENTITY_KEY)}, 400,
     r"needs exactly one input, 'subscriber_id' \(INT64, shape \[n\]\); got \['customer_id'\]"),
]


def _transformer_refuses(served: Served, protocol, request_kwargs, status, message) -> None:
    known = served.recent_ids(1)[0]
    url = v1_url(served.transformer, served.model) if protocol == "v1" else v2_url(served.transformer, served.model)
    before = metrics(served.transformer)
    resp = httpx.post(url, timeout=TIMEOUT, **request_kwargs)
    assert 400 <= resp.status_code < 500, f"{resp.status_code}: {resp.text[:500]}"
    assert resp.status_code == status, resp.text[:500]
    assert re.search(message, error_of(resp)), error_of(resp)
    # A caller's mistake is not a model error: the rollout analysis reads these counters.
    after = metrics(served.transformer)
    for version in (served.v1, served.v2, "unknown"):
        errors = dict(name="mlops_upstream_requests_total", role="primary", model_version=version, outcome="error")
        assert metric(after, **errors) == metric(before, **errors)
    ok = ask_transformer(served, [known])
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize("protocol, request_kwargs, status, message",
                         [pytest.param(*case[1:], id=case[0]) for case in TRANSFORMER_BAD_REQUESTS])
def test_transformer_answers_a_bad_request_with_a_4xx_naming_the_problem(served, protocol, request_kwargs, status,
                                                                          message):
    _transformer_refuses(served, protocol, request_kwargs, status, message)


@pytest.mark.parametrize("protocol, request_kwargs, status, message",
                         [pytest.param(*case[1:], id=case[0]) for case in CHURN_TRANSFORMER_BAD_REQUESTS])
def test_transformer_refuses_ids_an_integer_key_cannot_hold_naming_the_key(churn_served, protocol, request_kwargs,
                                                                             status, message):
    _transformer_refuses(churn_served, protocol, request_kwargs, status, message)


def test_integer_ids_are_answered_as_json_integers_and_int64_tensors_alike(churn_served):
    """V1 with JSON integers and V2 with an INT64 tensor ([n] or [n, 1]) get the same answers: the predictor's
    for the ids' online features, which equal the in-process model's on the same features."""
    served = churn_served
    ids = served.recent_ids(6, with_missing=2)
    assert all(type(i) is int for i in ids)
    features = feature_store.online_features(served.fs, ids)
    assert features[CHURN_KEY].tolist() == ids
    expected = served.loaded(served.v1).estimator.predict_proba(
        in_process_frame(instances(features, CHURN), CHURN))[:, 1]
    classes = (expected >= CHURN_THRESHOLD).astype(int).tolist()

    v1 = ask_transformer(served, ids)
    assert v1.status_code == 200, v1.text
    assert [p[CHURN_KEY] for p in v1.json()["predictions"]] == ids  # echoed as integers
    np.testing.assert_allclose([p["probability"] for p in v1.json()["predictions"]], expected, rtol=0, atol=1e-12)
    assert [p["class"] for p in v1.json()["predictions"]] == classes
    column = {"inputs": [{"name": CHURN_KEY, "datatype": "INT64", "shape": [len(ids), 1], "data": [[i] for i in ids]}]}
    for body in (ids_v2(served, ids), column):
        v2 = httpx.post(v2_url(served.transformer, served.model), json=body, timeout=TIMEOUT)
        assert v2.status_code == 200, v2.text
        outputs = {o["name"]: o["data"] for o in v2.json()["outputs"]}
        np.testing.assert_allclose(outputs["probability"], expected, rtol=0, atol=1e-12)
        assert outputs["class"] == classes and v2.json()["model_version"] == served.v1


# -- 3. transformer features equal offline features -------------------------------------------

def test_transformer_features_equal_offline_features(any_served):
    served, project = any_served, any_served.project
    key, numeric, text = served.key, project.features.of_type("float", "integer"), project.features.of_type("string")
    ids = served.recent_ids(8, with_missing=3)
    request_id = f"parity-{uuid.uuid4()}"
    resp = ask_transformer(served, ids, request_id)
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    assert answer["request_id"] == request_id and [p[key] for p in answer["predictions"]] == ids

    served_rows = logged(served, {request_id: len(ids)}).sort_values("row").reset_index(drop=True)
    as_of = pd.Timestamp(served.window[1])
    assert as_of > served.features[FEATURE_TIMESTAMP].max()  # after the newest feature timestamp
    entities = pd.DataFrame({key: ids, project.event_timestamp: [as_of] * len(ids)})
    offline = feature_store.historical_features(served.fs, entities)
    assert served_rows[key].tolist() == offline[key].tolist() == ids  # the log keeps the key as the caller sent it
    assert offline[list(numeric)].isna().any().any()  # missing values are compared too
    for name in numeric:
        online_values, offline_values = served_rows[name].to_numpy("float64"), offline[name].to_numpy("float64")
        assert np.array_equal(np.isnan(online_values), np.isnan(offline_values)), name
        np.testing.assert_allclose(online_values, offline_values, rtol=0, atol=1e-9, err_msg=name)
    for name in text:
        assert served_rows[name].tolist() == offline[name].tolist(), name

    # The transformer's probability is the predictor's answer for exactly these features.
    direct = httpx.post(v1_url(served.predictor(served.v1), served.model),
                        json={"instances": instances(served_rows, project)}, timeout=TIMEOUT)
    assert direct.status_code == 200, direct.text
    direct_probability = [p["probability"] for p in direct.json()["predictions"]]
    np.testing.assert_allclose([p["probability"] for p in answer["predictions"]], direct_probability, rtol=0,
                               atol=1e-12)
    np.testing.assert_allclose(served_rows["probability"], direct_probability, rtol=0, atol=1e-12)
    assert [p["class"] for p in answer["predictions"]] == [p["class"] for p in direct.json()["predictions"]]


# -- 4. the request log holds every served row --------------------------------------------------

def test_request_log_holds_every_served_row(any_served):
    served, project = any_served, any_served.project
    ids_a, ids_b = served.recent_ids(7), served.recent_ids(12)[7:]
    request_a = f"log-v1-{uuid.uuid4()}"
    a = ask_transformer(served, ids_a, request_a)
    b = httpx.post(v2_url(served.transformer, served.model), json=ids_v2(served, ids_b), timeout=TIMEOUT)
    assert a.status_code == 200 and b.status_code == 200, (a.text, b.text)
    request_b = b.json()["id"]
    assert a.json()["request_id"] == request_a and request_b

    rows = logged(served, {request_a: len(ids_a), request_b: len(ids_b)})
    if project.entity.type == "integer":
        assert rows[served.key].dtype.kind == "i"  # integer ids stay integers in the log
    complete = [n for n in project.features.names if served.features[n].notna().all()]  # never missing in the data
    assert complete
    expected_columns = {"request_id", "row", "logged_at", served.key, *project.features.names, "model_name",
                        "model_version", "probability", "predicted_class"}
    assert expected_columns <= set(rows.columns)
    answers = {request_a: ([p["probability"] for p in a.json()["predictions"]],
                           [p["class"] for p in a.json()["predictions"]], ids_a),
               request_b: ({o["name"]: o["data"] for o in b.json()["outputs"]}["probability"],
                           {o["name"]: o["data"] for o in b.json()["outputs"]}["class"], ids_b)}
    for request_id, (probability, classes, ids) in answers.items():
        mine = rows[rows["request_id"] == request_id].sort_values("row")
        assert len(mine) == len(ids)  # every served row, once
        assert mine["row"].tolist() == list(range(len(ids)))
        assert mine[served.key].tolist() == ids  # the project's entity key, its ids as sent (int or str)
        assert set(mine["model_version"]) == {served.v1} and set(mine["model_name"]) == {served.model}
        np.testing.assert_allclose(mine["probability"], probability, rtol=0, atol=1e-12)
        assert mine["predicted_class"].tolist() == classes
        assert mine[complete].notna().all().all()


# -- 5. shadow ------------------------------------------------------------------------------------

def test_shadow_never_changes_answers_and_its_failures_never_fail_requests(any_served):
    served = any_served
    ids = served.recent_ids(8)
    baseline = ask_transformer(served, ids)
    assert baseline.status_code == 200, baseline.text
    expected = baseline.json()["predictions"]
    assert baseline.json()["model_version"] == served.v1

    # What v2 says for the same features: how many rows the shadow must count as agreeing.
    features = feature_store.online_features(served.fs, ids)
    v2_answer = httpx.post(v1_url(served.predictor(served.v2), served.model),
                           json={"instances": instances(features, served.project)}, timeout=TIMEOUT)
    agree = sum(p["class"] == q["class"] for p, q in zip(expected, v2_answer.json()["predictions"]))

    dead_port = free_ports(["dead"])["dead"]  # nothing listens there
    rounds = 3
    try:
        routing.write_routing(served.store, served.model,
                              routing.Routing(routing.ShadowTarget(served.predictor(served.v2), served.v2)))
        wait_for(lambda: shadow_active(served, served.v2), f"the transformer to mirror to v{served.v2}")
        before = metrics(served.transformer)
        for _ in range(rounds):
            resp = ask_transformer(served, ids)
            assert resp.status_code == 200, resp.text
            assert resp.json()["predictions"] == expected and resp.json()["model_version"] == served.v1

        def shadow_counts(text=None):
            text = text or metrics(served.transformer)
            return (metric(text, "mlops_upstream_requests_total", role="shadow", model_version=served.v2,
                           outcome="ok"),
                    metric(text, "mlops_shadow_rows_total", model_version=served.v2, agree="yes"),
                    metric(text, "mlops_shadow_rows_total", model_version=served.v2, agree="no"))

        start = shadow_counts(before)
        want = (start[0] + rounds, start[1] + rounds * agree, start[2] + rounds * (len(ids) - agree))
        wait_for(lambda: shadow_counts() == want, f"shadow counts {want}", timeout_s=10)
        assert metric(metrics(served.transformer), "mlops_upstream_requests_total", role="shadow",
                      model_version=served.v2, outcome="error") == metric(
            before, "mlops_upstream_requests_total", role="shadow", model_version=served.v2, outcome="error")

        routing.write_routing(served.store, served.model,
                              routing.Routing(routing.ShadowTarget(f"http://127.0.0.1:{dead_port}", "99")))
        wait_for(lambda: shadow_active(served, "99"), "the transformer to mirror to the dead shadow")
        errors = dict(name="mlops_upstream_requests_total", role="shadow", model_version="99", outcome="error")
        start_errors = metric(metrics(served.transformer), **errors)
        for _ in range(rounds):
            resp = ask_transformer(served, ids)
            assert resp.status_code == 200, resp.text
            assert resp.json()["predictions"] == expected and resp.json()["model_version"] == served.v1
        wait_for(lambda: metric(metrics(served.transformer), **errors) == start_errors + rounds,
                 "shadow errors to be counted", timeout_s=10)
    finally:
        reset_routing(served)


# -- 6. splitter ------------------------------------------------------------------------------------

def test_splitter_shares_traffic_exactly_and_attributes_injected_faults(any_served):
    served = any_served
    ids = served.recent_ids(1)
    try:
        served.local.set_routes({served.v1: 80, served.v2: 20})
        versions = []
        for _ in range(20):
            resp = ask_transformer(served, ids)
            assert resp.status_code == 200, resp.text
            versions.append(resp.json()["model_version"])
        assert versions.count(served.v1) == 16 and versions.count(served.v2) == 4

        before = metrics(served.transformer)
        served.local.set_routes({served.v1: 80, served.v2: 20}, faults={served.v2: {"error_percent": 50}})
        outcomes = []
        for _ in range(20):
            resp = ask_transformer(served, ids)
            if resp.status_code == 200:
                outcomes.append(resp.json()["model_version"])
            else:
                assert resp.status_code == 502, resp.text
                assert f"(v{served.v2})" in error_of(resp) and "fault injected" in error_of(resp)
                outcomes.append("502")
        assert (outcomes.count(served.v1), outcomes.count(served.v2), outcomes.count("502")) == (16, 2, 2)
        after = metrics(served.transformer)

        def delta(version, outcome):
            labels = dict(name="mlops_upstream_requests_total", role="primary", model_version=version, outcome=outcome)
            return metric(after, **labels) - metric(before, **labels)

        assert (delta(served.v2, "error"), delta(served.v2, "ok")) == (2, 2)
        assert (delta(served.v1, "error"), delta(served.v1, "ok")) == (0, 16)
        assert delta("unknown", "error") == 0
    finally:
        served.local.set_routes({served.v1: 100})
    assert served.local.status()["routes"] == [{"version": served.v1, "weight": 100, "fault": {}}]


# -- 7. integrity --------------------------------------------------------------------------------

def test_tampered_model_files_are_refused(served, tmp_path):
    ref = model_files.resolve_model(served.model, served.v1)
    model_dir = model_files.fetch_model(ref, tmp_path / "cache", served.store)
    model_files.load_model(model_dir, ref.digest)  # the untouched copy loads
    weights = model_dir / "model.skops"
    original = weights.read_bytes()
    weights.write_bytes(original[:100] + bytes([original[100] ^ 1]) + original[101:])
    with pytest.raises(ModelIntegrityError, match=f"expected {ref.digest}"):
        model_files.load_model(model_dir, ref.digest)

    port = free_ports(["predictor"])["predictor"]
    started = subprocess.run(
        [sys.executable, "-m", "mlops.serving.predictor", "--project", str(served.project.root), "--model-dir",
         str(model_dir), "--model-digest", ref.digest,
         "--model-version", served.v1, "--model-name", "x", "--host", "127.0.0.1", "--http-port", str(port),
         "--cache-dir", str(tmp_path / "predictor-cache")],
        capture_output=True, text=True, timeout=120, env=dict(os.environ), cwd=tmp_path)
    assert started.returncode != 0, started.stdout + started.stderr
    errors = [line for line in started.stderr.splitlines() if line.startswith("MLOPS-ERROR:")]
    assert errors, started.stderr
    assert ref.digest in errors[0] and "do not match the registered digest" in errors[0]
    assert "Traceback" not in started.stderr and "loaded x" not in started.stdout
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=5)

    # A file added to a model directory is a change too; fetching again replaces the bad copy.
    weights.write_bytes(original)
    (model_dir / "extra.py").write_text("print('hello')\n")
    with pytest.raises(ModelIntegrityError):
        model_files.load_model(model_dir, ref.digest)
    again = model_files.fetch_model(ref, tmp_path / "cache", served.store)
    assert again == model_dir and not (again / "extra.py").exists()
    model_files.load_model(again, ref.digest)


# -- 8. predictor metrics -----------------------------------------------------------------------

def test_predictor_metrics_show_the_served_version_and_count_predictions(any_served):
    served = any_served
    base = served.predictor(served.v1)
    digest = model_files.resolve_model(served.model, served.v1).digest
    labels = dict(model_name=served.model, model_version=served.v1)
    before = metrics(base)
    assert metric(before, "mlops_model_info", **labels, digest=digest) == 1.0

    rows = instances(served.test_rows.head(9), served.project)
    v1, v2 = v1_url(base, served.model), v2_url(base, served.model)
    assert httpx.post(v1, json={"instances": rows}, timeout=TIMEOUT).status_code == 200
    assert httpx.post(v2, json={"inputs": v2_inputs(rows[:4], served.project)}, timeout=TIMEOUT).status_code == 200
    refused = httpx.post(v1, json={"instances": [{}]}, timeout=TIMEOUT)
    assert refused.status_code == 400
    after = metrics(base)

    def delta(name, **more):
        return metric(after, name, **labels, **more) - metric(before, name, **labels, **more)

    assert delta("mlops_prediction_probability_count") == 13
    assert delta("mlops_predictions_total", **{"class": "0"}) + delta("mlops_predictions_total", **{"class": "1"}) == 13
    assert delta("mlops_refused_requests_total", status="400") == 1


# -- malformed values and batches: refused with a 4xx before any model is blamed --------------------

@pytest.mark.parametrize("protocol, body, message", [
    pytest.param("v1", {"instances": [GOOD_ROW | {"income": "a lot"}]},
                 r"instance 0: income must be a number or null, got str 'a lot'", id="v1-text-for-number"),
    pytest.param("v1", {"instances": [GOOD_ROW | {"income": {"amount": 52000}}]},
                 r"instance 0: income must be a number or null, got dict", id="v1-object-for-number"),
    pytest.param("v2", _v2(income={"data": ["a lot"]}),
                 r"row 0: income must be a number or null, got str 'a lot'", id="v2-text-in-numeric-tensor"),
])
def test_predictor_refuses_non_numeric_values_with_a_400(served, protocol, body, message):
    base = served.predictor(served.v1)
    resp = httpx.post(_predictor_url(base, protocol), json=body, timeout=TIMEOUT)
    assert resp.status_code == 400, f"{resp.status_code}: {resp.text[:500]}"
    assert re.search(message, error_of(resp)), error_of(resp)
    good_request_is_answered(base)


@pytest.mark.parametrize("request_kwargs, status, message", [
    pytest.param(lambda s, ids: {"json": {"instances": [{s.key: ids[0]}] * (MAX_ROWS + 1)}}, 413,
                 rf"{MAX_ROWS + 1} .*at most {MAX_ROWS}", id="too-many-ids"),
    pytest.param(lambda s, ids: {"json": ids_v2(s, [])}, 400, r"empty|no rows|no ids", id="v2-empty-tensor"),
    pytest.param(lambda s, ids: {"json": {"inputs": [ids_v2(s, [ids[0]])["inputs"][0] | {"shape": [2]}]}}, 400,
                 r"shape", id="v2-shape-and-data-disagree"),
])
def test_transformer_refuses_malformed_batches_without_blaming_the_model(any_served, request_kwargs, status, message):
    served = any_served
    ids = served.recent_ids(1)
    kwargs = request_kwargs(served, ids)
    url = (v1_url(served.transformer, served.model) if "instances" in kwargs["json"]
           else v2_url(served.transformer, served.model))
    before = metrics(served.transformer)
    resp = httpx.post(url, timeout=60, **kwargs)
    after = metrics(served.transformer)
    counted = {version: metric(after, "mlops_upstream_requests_total", role="primary", model_version=version,
                               outcome="error") -
               metric(before, "mlops_upstream_requests_total", role="primary", model_version=version, outcome="error")
               for version in (served.v1, "unknown")}
    # A caller's mistake gets a 4xx before any predictor is asked, and never counts as a model error.
    assert (resp.status_code, counted) == (status, {served.v1: 0, "unknown": 0}), \
        f"answered {resp.status_code} ({resp.text[:300]}); primary errors counted: {counted}"
    assert re.search(message, error_of(resp)), error_of(resp)
