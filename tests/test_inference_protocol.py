"""Conformance: the servers with clients no one on the project wrote (issue 15).

tritonclient's HTTP client (the Open Inference Protocol's reference client) and
the kserve SDK's REST client drive the predictor and the transformer with
their defaults (JSON without a Content-Type, binary tensors in and out, request
ids, metadata, readiness, versions), and every answer must equal the
in-process prediction. The model repository routes are refused and serving
still answers afterwards. Binary bodies that lie about their framing get a 400
that says which number is wrong. schemathesis (in its own locked venv)
fuzzes both servers over their own /openapi.json: no 5xx.

The clients drive both example projects' topologies (tests/test_serving.py):
credit-default's string ids travel as BYTES tensors, churn's integer ids as
INT64 tensors, in JSON and in binary; the framing tests stay on credit.
"""

from __future__ import annotations

import asyncio
import json
import re
import struct
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from mlops.features import store as feature_store
from mlops.serving.http_server import VERSION_HEADER
from tests import test_serving
from tests.test_serving import (CATEGORICAL_FEATURES, ENTITY_KEY, FEATURE_NAMES, GOOD_ROW, TIMEOUT,  # noqa: F401
                                any_served, churn_served, error_of, in_process_frame, instances, served)

pytestmark = pytest.mark.platform
# The models this module serves the examples as (not test_serving's: no two modules share a model or its log).
SERVED_MODELS = {"credit-default": "protocol-credit", "churn": "protocol-churn"}
MODEL = SERVED_MODELS["credit-default"]


def v1_url(base: str, name: str = MODEL) -> str:
    return test_serving.v1_url(base, name)


def v2_url(base: str, name: str = MODEL) -> str:
    return test_serving.v2_url(base, name)
ROOT = Path(__file__).resolve().parent.parent
BINARY = "inference-header-content-length"


# -- what the answers must equal ------------------------------------------------------------

def held_out_rows(served, n: int = 12) -> list[dict]:
    """Held-out rows as a client sends them, with missing numbers and text among them."""
    rows = instances(served.test_rows.head(n), served.project)
    (numeric, *_), (text, *_), _ = served.blanks
    rows[0][numeric] = None
    rows[1][text] = None
    return rows


def expected_for(served, version: str, rows: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    probability = served.loaded(version).estimator.predict_proba(in_process_frame(rows, served.project))[:, 1]
    return probability, (probability >= served.threshold).astype(np.int64)


def triton_inputs(rows: list[dict], binary: bool, project=None) -> list[triton.InferInput]:
    """One tensor per feature as tritonclient builds them from NumPy (missing text as ''... not allowed:
    tritonclient cannot send a null, so rows here carry none in text columns)."""
    names, text = ((project.features.names, project.features.of_type("string")) if project
                   else (FEATURE_NAMES, CATEGORICAL_FEATURES))
    tensors = []
    for name in names:
        if name in text:
            values = np.array([row[name].encode() for row in rows], dtype=np.object_)
            tensor = triton.InferInput(name, [len(rows)], "BYTES")
        else:
            values = np.array([np.nan if row[name] is None else row[name] for row in rows], dtype=np.float64)
            tensor = triton.InferInput(name, [len(rows)], "FP64")
        tensor.set_data_from_numpy(values, binary_data=binary)
        tensors.append(tensor)
    return tensors


def complete_text(rows: list[dict], project=None) -> list[dict]:
    """Rows without missing text: a binary BYTES tensor has no null (missing numbers travel as NaN,
    which the predictor reads as missing, as a V1 null)."""
    text = project.features.of_type("string") if project else CATEGORICAL_FEATURES
    return [{**row, **{n: row[n] or "missing" for n in text}} for row in rows]


def client(base: str) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(url=base.removeprefix("http://"), network_timeout=TIMEOUT)


# -- tritonclient against the predictor ---------------------------------------------------------

@pytest.mark.parametrize("binary_in, binary_out", [(False, False), (True, True), (True, False), (False, True)],
                         ids=["json-json", "binary-binary", "binary-in-json-out", "json-in-binary-out"])
def test_tritonclient_infers_on_the_predictor(any_served, binary_in, binary_out):
    served = any_served
    rows = complete_text(held_out_rows(served), served.project)
    # NaN in a JSON tensor is not JSON: only binary inputs may carry missing numbers.
    rows = rows if binary_in else [{k: (0.0 if v is None else v) for k, v in row.items()} for row in rows]
    probability, classes = expected_for(served, served.v1, rows)
    outputs = [triton.InferRequestedOutput("probability", binary_data=binary_out),
               triton.InferRequestedOutput("class", binary_data=binary_out)]
    with client(served.predictor(served.v1)) as c:
        result = c.infer(served.model, triton_inputs(rows, binary_in, served.project), outputs=outputs,
                         request_id="triton-1")
    np.testing.assert_allclose(result.as_numpy("probability"), probability, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(result.as_numpy("class"), classes)
    answer = result.get_response()
    assert (answer["id"], answer["model_name"], answer["model_version"]) == ("triton-1", served.model, served.v1)
    assert {o["name"]: "data" in o for o in answer["outputs"]} == {"probability": not binary_out,
                                                                   "class": not binary_out}


def test_tritonclient_defaults_binary_everything_and_one_output_asked_for(served):
    rows = complete_text(held_out_rows(served, 5))
    probability, _ = expected_for(served, served.v1, rows)
    with client(served.predictor(served.v1)) as c:
        everything = c.infer(MODEL, triton_inputs(rows, True))  # no outputs named: binary_data_output
        one = c.infer(MODEL, triton_inputs(rows, True), outputs=[triton.InferRequestedOutput("probability")])
    np.testing.assert_allclose(everything.as_numpy("probability"), probability, rtol=0, atol=1e-12)
    assert everything.as_numpy("class") is not None
    assert [o["name"] for o in one.get_response()["outputs"]] == ["probability"] and one.as_numpy("class") is None


def test_tritonclient_reads_health_metadata_and_the_served_version(served):
    with client(served.predictor(served.v1)) as c:
        assert c.is_server_live() and c.is_server_ready()
        assert c.is_model_ready(MODEL) and c.is_model_ready(MODEL, model_version=served.v1)
        assert not c.is_model_ready(MODEL, model_version="999")
        meta = c.get_model_metadata(MODEL, model_version=served.v1)
        assert meta["name"] == MODEL
        assert [i["name"] for i in meta["inputs"]] == [n for n, _ in served.loaded(served.v1).columns]
        assert {o["name"] for o in meta["outputs"]} == {"probability", "class"}
        rows = complete_text(held_out_rows(served, 3))
        pinned = c.infer(MODEL, triton_inputs(rows, True), model_version=served.v1)
        np.testing.assert_allclose(pinned.as_numpy("probability"), expected_for(served, served.v1, rows)[0],
                                   rtol=0, atol=1e-12)
        with pytest.raises(InferenceServerException) as refused:
            c.infer(MODEL, triton_inputs(rows, True), model_version="999")
    assert refused.value.status() == "404"
    assert f"version 999 is not served here; this server serves version {served.v1}" in refused.value.message()


# -- tritonclient against the transformer ------------------------------------------------------

def transformer_expectation(served, ids: list) -> tuple[np.ndarray, np.ndarray]:
    features = feature_store.online_features(served.fs, ids)
    assert features[served.key].tolist() == ids
    probability = served.loaded(served.v1).estimator.predict_proba(
        features[list(served.project.features.names)])[:, 1]
    return probability, (probability >= served.threshold).astype(np.int64)


def id_tensor(served, ids: list, binary: bool = True):
    """The entity ids as tritonclient sends them: BYTES for a string key, INT64 for an integer one."""
    if served.project.entity.type == "integer":
        tensor = triton.InferInput(served.key, [len(ids)], "INT64")
        tensor.set_data_from_numpy(np.array(ids, dtype=np.int64), binary_data=binary)
    else:
        tensor = triton.InferInput(served.key, [len(ids)], "BYTES")
        tensor.set_data_from_numpy(np.array([i.encode() for i in ids], dtype=np.object_), binary_data=binary)
    return tensor


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_tritonclient_infers_on_the_transformer_and_its_id_comes_back(any_served, binary):
    served = any_served
    ids = served.recent_ids(6, with_missing=2)
    probability, classes = transformer_expectation(served, ids)
    tensor = id_tensor(served, ids, binary)
    with client(served.transformer) as c:
        assert c.is_server_ready() and c.is_model_ready(served.model)
        result = c.infer(served.model, [tensor], request_id=f"transformer-{binary}",
                         outputs=None if binary else [triton.InferRequestedOutput("probability", binary_data=False),
                                                      triton.InferRequestedOutput("class", binary_data=False)])
    np.testing.assert_allclose(result.as_numpy("probability"), probability, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(result.as_numpy("class"), classes)
    answer = result.get_response()
    assert (answer["id"], answer["model_version"]) == (f"transformer-{binary}", served.v1)


def test_the_transformer_pins_no_version_and_says_which_answered(served):
    with client(served.transformer) as c:
        tensor = triton.InferInput(ENTITY_KEY, [1], "BYTES")
        tensor.set_data_from_numpy(np.array([served.recent_ids(1)[0].encode()], dtype=np.object_))
        c.infer(MODEL, [tensor])
        with pytest.raises(InferenceServerException) as refused:
            c.infer(MODEL, [tensor], model_version=served.v1)
        assert not c.is_model_ready(MODEL, model_version=served.v1)
    assert refused.value.status() == "404"
    assert f"serves {MODEL} by its production alias (last answered by version {served.v1})" in refused.value.message()


# -- the kserve SDK's REST client -------------------------------------------------------------

@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_the_kserve_rest_client_infers_on_both_servers(any_served, binary):
    from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

    served, project = any_served, any_served.project
    model = served.model
    rows = complete_text(held_out_rows(served, 4), project)
    rows = rows if binary else [{k: (0.0 if v is None else v) for k, v in row.items()} for row in rows]
    tensors = []
    for name in project.features.names:
        text = name in project.features.of_type("string")
        tensor = InferInput(name, [len(rows)], "BYTES" if text else "FP64")
        values = [row[name] for row in rows]
        tensor.set_data_from_numpy(np.array(values, dtype=np.object_ if text else np.float64), binary_data=binary)
        tensors.append(tensor)
    ids = served.recent_ids(3)
    integer = project.entity.type == "integer"
    entity = InferInput(served.key, [len(ids)], "INT64" if integer else "BYTES")
    entity.set_data_from_numpy(np.array(ids, dtype=np.int64 if integer else np.object_), binary_data=binary)

    async def ask():
        v2 = InferenceRESTClient(RESTConfig(protocol="v2", timeout=TIMEOUT))
        v1 = InferenceRESTClient(RESTConfig(protocol="v1", timeout=TIMEOUT))
        try:
            return (await v2.infer(served.predictor(served.v1), InferRequest(model, tensors, request_id="sdk"),
                                   model_name=model),
                    await v2.infer(served.transformer, InferRequest(model, [entity], request_id="sdk-t"),
                                   model_name=model),
                    await v1.infer(served.predictor(served.v1), {"instances": rows}, model_name=model))
        finally:
            await v2._client.aclose()
            await v1._client.aclose()

    predictor_v2, transformer_v2, predictor_v1 = asyncio.run(ask())
    probability, classes = expected_for(served, served.v1, rows)
    assert predictor_v2.id == "sdk" and transformer_v2.id == "sdk-t"
    outputs = {o.name: o for o in predictor_v2.outputs}
    np.testing.assert_allclose(outputs["probability"].as_numpy(), probability, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(outputs["class"].as_numpy(), classes)
    np.testing.assert_allclose({o.name: o for o in transformer_v2.outputs}["probability"].as_numpy(),
                               transformer_expectation(served, ids)[0], rtol=0, atol=1e-12)
    np.testing.assert_allclose([p["probability"] for p in predictor_v1["predictions"]], probability, rtol=0,
                               atol=1e-12)


# -- no caller changes what is served ------------------------------------------------------------

REPOSITORY_ROUTES = [("POST", "/v2/repository/models/{model}/unload"), ("POST", "/v2/repository/models/{model}/load"),
                     ("POST", "/v2/repository/models/no-such-model/load"), ("POST", "/v2/repository/index"),
                     ("GET", "/v2/repository/models/{model}/unload")]


@pytest.mark.parametrize("server", ["predictor", "transformer"])
def test_every_repository_route_is_refused_and_serving_still_answers(served, server):
    base = served.predictor(served.v1) if server == "predictor" else served.transformer
    for method, path in REPOSITORY_ROUTES:
        resp = httpx.request(method, base + path.format(model=MODEL), timeout=TIMEOUT)
        assert resp.status_code == 404, (method, path, resp.status_code, resp.text)
        assert error_of(resp).startswith("Not Found: the model repository extension is off"), resp.text
    with client(base) as c:
        with pytest.raises(InferenceServerException) as refused:
            c.unload_model(MODEL)
        assert refused.value.status() == "404"
        assert c.is_model_ready(MODEL)
    body = ({"instances": [GOOD_ROW]} if server == "predictor"
            else {"instances": [{ENTITY_KEY: served.recent_ids(1)[0]}]})
    assert httpx.post(v1_url(base), json=body, timeout=TIMEOUT).status_code == 200
    schema = httpx.get(f"{base}/openapi.json", timeout=TIMEOUT).json()
    assert not [p for p in schema["paths"] if p.startswith("/v2/repository")]


# -- what callers may send ------------------------------------------------------------------------

def test_a_json_body_without_a_content_type_is_read_as_json_on_both_servers(served):
    customer = served.recent_ids(1)[0]
    for url, body in ((v1_url(served.predictor(served.v1)), {"instances": [GOOD_ROW]}),
                      (v2_url(served.transformer), {"id": "no-type", "inputs": [
                          {"name": ENTITY_KEY, "datatype": "BYTES", "shape": [1], "data": [customer]}]})):
        resp = httpx.post(url, content=json.dumps(body).encode(), timeout=TIMEOUT)
        assert resp.status_code == 200, resp.text
    assert resp.json()["id"] == "no-type"


@pytest.mark.parametrize("server", ["predictor", "transformer"])
def test_version_paths_and_parameters_never_answer_5xx(served, server):
    base = served.predictor(served.v1) if server == "predictor" else served.transformer
    served_ok = server == "predictor"
    for method, path in [("GET", f"/v2/models/{MODEL}/versions/{served.v1}"),
                         ("GET", f"/v2/models/{MODEL}/versions/{served.v1}/ready"),
                         ("GET", f"/v2/models/{MODEL}?model_version={served.v1}"),
                         ("GET", f"/v2/models/{MODEL}/ready?model_version={served.v1}")]:
        resp = httpx.request(method, base + path, timeout=TIMEOUT)
        assert resp.status_code == (200 if served_ok else 404), (path, resp.text)
    for path in [f"/v2/models/{MODEL}/versions/7x", f"/v2/models/{MODEL}/versions/7x/ready",
                 f"/v2/models/{MODEL}/ready?model_version=7x",
                 f"/v2/models/{MODEL}/ready?model_version={served.v1}&model_version=7x",
                 f"/v2/models/no-such-model/versions/{served.v1}"]:
        resp = httpx.get(base + path, timeout=TIMEOUT)
        assert resp.status_code == 404, (path, resp.status_code, resp.text)
        assert error_of(resp), path
    resp = httpx.post(f"{base}/v2/models/{MODEL}/infer?model_version=7x", json={"inputs": []}, timeout=TIMEOUT)
    assert resp.status_code == 404 and "7x" in error_of(resp)


# -- binary bodies that lie ---------------------------------------------------------------------------

def binary_body(tensors: list[tuple[str, str, list[int], bytes]], header_extra: dict | None = None,
                sizes: dict[str, int] | None = None) -> tuple[bytes, int]:
    """A body in the binary tensor data extension; ``sizes`` overrides declared binary_data_size values."""
    header = {"inputs": [{"name": n, "datatype": t, "shape": s,
                          "parameters": {"binary_data_size": (sizes or {}).get(n, len(raw))}}
                         for n, t, s, raw in tensors], **(header_extra or {})}
    head = json.dumps(header).encode()
    return head + b"".join(raw for *_, raw in tensors), len(head)


def predictor_tensors(n: int = 1) -> list[tuple[str, str, list[int], bytes]]:
    out = []
    for name in FEATURE_NAMES:
        if name in CATEGORICAL_FEATURES:
            value = GOOD_ROW[name].encode()
            out.append((name, "BYTES", [n], (struct.pack("<I", len(value)) + value) * n))
        else:
            out.append((name, "FP64", [n], np.full(n, GOOD_ROW[name], dtype="<f8").tobytes()))
    return out


def post_binary(base: str, body: bytes, header_length: object, **headers) -> httpx.Response:
    value = header_length if isinstance(header_length, bytes) else str(header_length).encode()
    return httpx.post(v2_url(base), content=body, timeout=TIMEOUT, headers={BINARY.encode(): value, **headers})


def test_a_good_binary_body_is_answered_as_its_json_twin(served):
    base = served.predictor(served.v1)
    body, length = binary_body(predictor_tensors(3), {"id": "twin"})
    resp = post_binary(base, body, length)
    assert resp.status_code == 200, resp.text
    assert resp.json()["id"] == "twin"
    twin = httpx.post(v2_url(base), json={"id": "twin", "inputs": [
        {"name": n, "datatype": "BYTES" if n in CATEGORICAL_FEATURES else "FP64", "shape": [3],
         "data": [GOOD_ROW[n]] * 3} for n in FEATURE_NAMES]}, timeout=TIMEOUT)
    assert resp.json()["outputs"] == twin.json()["outputs"]


def _lies():
    good = predictor_tensors()
    body, length = binary_body(good)
    income = FEATURE_NAMES.index("income")
    region = FEATURE_NAMES.index("region")

    def with_tensor(i, tensor):
        return binary_body(good[:i] + [tensor] + good[i + 1:])

    return [
        ("header-longer-than-body", body, len(body) + 1, 400, r"Inference-Header-Content-Length is '\d+': it must"),
        ("header-zero", body, 0, 400, r"Inference-Header-Content-Length is '0'"),
        ("header-negative", body, -5, 400, r"Inference-Header-Content-Length is '-5'"),
        ("header-not-a-number", body, "12abc", 400, r"Inference-Header-Content-Length is '12abc'"),
        ("header-a-superscript-digit", body, b"\xb2", 400, r"Inference-Header-Content-Length is '\xb2'"),
        ("header-too-short", body, length - 3, 400, r"first \d+ bytes of the body .* are not a JSON object"),
        ("header-too-long", body, length + 3, 400, r"first \d+ bytes of the body .* are not a JSON object"),
        ("size-overruns-body", *binary_body(good, sizes={"region": 10_000}), 400,
         r"input 'region' declares binary_data_size 10000 but only \d+ bytes of the body are left"),
        ("bytes-left-over", body + b"\x00" * 8, length, 400, r"the body has 8 bytes after the last binary input"),
        ("size-disagrees-with-shape", *with_tensor(income, ("income", "FP64", [2], b"\x00" * 8)), 400,
         r"input 'income' declares shape \[2\] of FP64 \(16 bytes\) but its binary_data_size is 8"),
        ("bytes-element-overruns", *with_tensor(region, ("region", "BYTES", [1], struct.pack("<I", 99) + b"x")), 400,
         r"input 'region': BYTES element 0 declares 99 bytes but only 1 are left"),
        ("bytes-cut-inside-a-length", *with_tensor(region, ("region", "BYTES", [1], b"\x01\x00")), 400,
         r"input 'region': the binary BYTES data ends inside an element's 4-byte length"),
        ("bytes-count-disagrees", *with_tensor(region, ("region", "BYTES", [2], struct.pack("<I", 1) + b"x")), 400,
         r"input 'region' declares shape \[2\] \(2 elements\) but its binary data holds 1"),
        ("bytes-not-utf8", *with_tensor(region, ("region", "BYTES", [1], struct.pack("<I", 1) + b"\xff")), 400,
         r"input 'region': BYTES element 0 is not UTF-8 text"),
        ("unknown-datatype", *with_tensor(income, ("income", "FLOAT", [1], b"\x00" * 8)), 400,
         r"input 'income' has datatype 'FLOAT'"),
        ("negative-dimension", *with_tensor(income, ("income", "FP64", [-1], b"")), 400,
         r"input 'income' needs a \"shape\": a list of non-negative integers"),
        ("header-not-an-object", b"[1, 2]", 6, 400, r"must be an object, got list"),
        ("no-size-no-data", *binary_body(good, sizes={"income": None}), 400,
         r"input 'income' has no \"data\" and no binary_data_size"),
        ("right-framing-wrong-types", *with_tensor(income, ("income", "BYTES", [1], struct.pack("<I", 1) + b"x")),
         400, r"input income \(double\) has datatype BYTES, expected a numeric type"),
        ("too-many-rows", *binary_body(predictor_tensors(10_001)), 413, r"10001 .* at most 10000"),
        ("binary-output-flag-not-bool", *binary_body(good, {"parameters": {"binary_data_output": "yes"}}), 400,
         r"parameter binary_data_output must be true or false"),
        ("unknown-output", *binary_body(good, {"outputs": [{"name": "score"}]}), 400,
         r"unknown outputs requested: score; this model answers probability, class"),
    ]


@pytest.mark.parametrize("body, header_length, status, message", [pytest.param(*c[1:], id=c[0]) for c in _lies()])
def test_a_binary_body_that_lies_is_a_4xx_that_says_which_number_is_wrong(served, body, header_length, status,
                                                                          message):
    base = served.predictor(served.v1)
    resp = post_binary(base, body, header_length)
    assert resp.status_code == status, resp.text[:500]
    assert re.search(message, error_of(resp)), error_of(resp)
    assert httpx.post(v1_url(base), json={"instances": [GOOD_ROW]}, timeout=TIMEOUT).status_code == 200


@pytest.mark.parametrize("headers, path, status, message", [
    ({"content-type": "text/plain"}, "infer", 415, r"Content-Type 'text/plain'"),
    ({"content-type": "application/octet-stream"}, "infer-without-header", 415,
     r"Content-Type 'application/octet-stream'"),
    ({}, "v1", 400, r"binary tensor data extension .* is for V2 /infer requests"),
    ({"content-encoding": "gzip"}, "infer", 415, r"Content-Encoding 'gzip'"),
], ids=["binary-as-text-plain", "octet-stream-without-the-header", "binary-header-on-v1", "gzip"])
def test_what_a_binary_request_may_be_sent_as(served, headers, path, status, message):
    base = served.predictor(served.v1)
    body, length = binary_body(predictor_tensors())
    if path == "v1":
        resp = httpx.post(v1_url(base), content=body, headers={BINARY: str(length), **headers}, timeout=TIMEOUT)
    elif path == "infer-without-header":
        resp = httpx.post(v2_url(base), content=body, headers=headers, timeout=TIMEOUT)
    else:
        resp = post_binary(base, body, length, **headers)
    assert resp.status_code == status, resp.text[:300]
    assert re.search(message, error_of(resp)), error_of(resp)


def test_an_oversized_binary_body_is_refused_before_it_is_read(served):
    base = served.predictor(served.v1)
    big = b"\x00" * (8 * 1024 * 1024 + 1)
    resp = post_binary(base, big, 10)
    assert resp.status_code == 413 and "over the limit of 8388608 bytes" in error_of(resp)


# -- schemathesis over the servers' own OpenAPI --------------------------------------------------------

@pytest.fixture(scope="module")
def schemathesis_cli():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import locked_venv
    finally:
        sys.path.pop(0)
    python, _ = locked_venv.ensure(ROOT / "tests" / ".venv-schemathesis", ROOT / "tests" / "schemathesis-requirements.lock",
                                   ROOT / "tests" / "schemathesis-requirements.txt", "test-only schemathesis",
                                   progress=lambda _: None)
    return python.parent / "schemathesis"


@pytest.mark.parametrize("server", ["predictor", "transformer"])
def test_schemathesis_finds_no_server_error(served, schemathesis_cli, server, tmp_path):
    base = served.predictor(served.v1) if server == "predictor" else served.transformer
    report, config = tmp_path / "junit.xml", tmp_path / "schemathesis.toml"
    config.write_text(f'parameters = {{ model_name = "{MODEL}" }}\n')  # the model served, so requests reach it
    done = subprocess.run([str(schemathesis_cli), "--config-file", str(config), "run", f"{base}/openapi.json",
                           "--checks", "not_a_server_error",
                           "--max-examples", "60", "--seed", "15", "--mode", "all", "--report", "junit",
                           "--report-junit-path", str(report), "--generation-database", "none", "--workers", "2",
                           "--no-color"],
                          capture_output=True, text=True, timeout=900)
    summary = "\n".join(done.stdout.splitlines()[-40:])
    assert done.returncode == 0, summary
    operations = ElementTree.parse(report).getroot().iter("testcase")
    assert len([o for o in operations if o.find("failure") is None and o.find("error") is None]) >= 10, summary
    generated = re.search(r"(\d+) generated, (\d+) passed", done.stdout)
    assert generated and generated.group(1) == generated.group(2) and int(generated.group(1)) >= 300, summary
    print(f"schemathesis on the {server}: {generated.group(0)}")
    # Serving still answers.
    assert httpx.get(f"{base}/v2/health/ready", timeout=TIMEOUT).status_code == 200
