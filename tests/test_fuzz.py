"""Property-based fuzzing (hypothesis) of the serving endpoints and the data contract loader.

Targets: the predictor's and the transformer's V1 (``/v1/models/<name>:predict``)
and V2 (``/v2/models/<name>/infer``) endpoints, as real processes on
127.0.0.1 (one registered model version, Feast features materialized from
generated data, as ``mlops serve up`` runs them), and the contract loader
(``parse_contract`` on parsed YAML, ``load_contract`` on files). The servers
run for both example projects: credit-default (string ids, BYTES tensors)
and churn (integer ids: JSON integers, INT64 tensors; its own targets,
``churn ...``).

Requests are generated both structurally (the right shape with odd values:
NaN-like strings, huge numbers, non-finite tokens, lone surrogates, empty
lists, wrong datatypes, shape and data that disagree, missing, extra and
repeated fields and tensors) and as garbage (random JSON, random bytes, wrong
and odd Content-Types, truncated bodies, cloud-event headers). An oracle
written from the documented request format (README, "Serving and rollout")
says for each request whether it is valid; then:

* no answer is a 5xx (none is documented for these requests);
* a valid request gets 200 with the documented shape (one probability in
  [0, 1] and the class at the gate's threshold per row, the model version in
  the body and the ``x-mlops-model-version`` header);
* an invalid one gets the documented 4xx (400, 413, 415, 422) whose
  ``{"error": ...}`` is non-empty and names what was wrong (a field, an
  instance, a tensor, an id, the Content-Type);
* afterwards every server still answers a known-good request.

The loader either returns a well-formed contract (which survives a round
trip through its YAML) or raises ConfigError naming the file or place;
never another exception type.

Every run is reproducible (``derandomize=True``, no example database).
Executed cases are counted per target; the last test prints the counts (and
the answers by status) and requires at least 1,000 in total.
"""

from __future__ import annotations

import collections
import copy
import json
import math
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import orjson
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from mlops.stats import methods as stats
from mlops.errors import ConfigError
from mlops.validation.contract import (CHECK_FAMILIES, SEVERITIES, TYPES, Contract, contract_to_yaml, load_contract,
                                       parse_contract)

MODEL = "fuzz-tests"  # the credit-default example, renamed for this module
CHURN_MODEL = "fuzz-churn"  # the churn example, renamed for this module
MAX_ROWS = 10_000  # both servers' default limit of rows per request
TIMEOUT = 30.0
VERSION_HEADER = "x-mlops-model-version"
NUMERIC_KINDS = {"double", "float", "long", "integer"}
V2_NUMERIC = {"FP64", "FP32", "FP16", "INT64", "INT32", "INT16", "INT8", "UINT64", "UINT32", "UINT16", "UINT8"}
# An integer key's tensor types and the values each holds; an id outside its type's range is refused.
ID_INTEGER_TENSORS = {"INT64": (-(2 ** 63), 2 ** 63 - 1), "INT32": (-(2 ** 31), 2 ** 31 - 1), "UINT32": (0, 2 ** 32 - 1)}
INT64 = (-(2 ** 63), 2 ** 63 - 1)

CASES: collections.Counter = collections.Counter()  # target -> generated cases executed (sent and checked)
OUTCOMES: dict = collections.defaultdict(collections.Counter)  # target -> status -> cases
MIN_CASES = {  # target -> max_examples: the floor each fuzz test must reach
    "predictor v1": 180, "predictor v2": 180, "predictor garbage": 130,
    "transformer v1": 110, "transformer v2": 110, "transformer garbage": 110,
    "predictor binary": 120, "transformer binary": 100,
    "churn predictor v1": 80, "churn transformer v1": 110, "churn transformer v2": 110, "churn transformer binary": 60,
    "contract parse": 300, "contract load": 250,
}
MIN_TOTAL = 1_000


def fuzz(target: str):
    """Hypothesis settings of one target: reproducible, no deadline, no example database."""
    return settings(max_examples=MIN_CASES[target], derandomize=True, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.large_base_example, HealthCheck.filter_too_much])


# ==========================================================================================
# the servers
# ==========================================================================================

@dataclass
class Topology:
    """The running predictor and transformer, and what the oracle needs to know about them."""

    model: str
    entity: str  # the project's join key: what the transformer's requests name
    integer: bool  # whether its ids are integers (else strings)
    threshold: float  # the project's gate's decision threshold
    predictor: str
    transformer: str
    version: str
    columns: list[tuple[str, str]] = field(repr=False)  # the model's inputs in order: (name, "double" | "string")
    known: list = field(repr=False)  # entity ids the online store holds features for (all of them)
    client: httpx.Client = field(repr=False)
    urls: dict = field(default_factory=dict)  # every server of the topology (the splitter too)

    def _repr_pretty_(self, printer, cycle) -> None:  # hypothesis prints falsifying examples with this
        printer.text(repr(self))

    def url(self, server: str, protocol: str) -> str:
        base = self.predictor if server == "predictor" else self.transformer
        return (f"{base}/v1/models/{self.model}:predict" if protocol == "v1"
                else f"{base}/v2/models/{self.model}/infer")


def _serve(platform, tmp_path_factory, train_versions, example, name: str, raw, params: dict):
    from mlops.evaluation.gate import project_gate
    from mlops.features import store as feature_store
    from mlops.platform.local import free_ports
    from mlops.platform.storage import ObjectStore
    from mlops.serving import routing
    from mlops.serving.local import LocalServing
    from tests.projects import renamed

    work = tmp_path_factory.mktemp(name)
    store = ObjectStore(platform.s3_settings())
    project = renamed(example, work, name)
    key = project.entity.key
    versions, _ = train_versions(project, raw, work, (params,))
    routing.write_routing(store, name, routing.Routing())
    # Which entities the online store knows (a feature value at all): the oracle must tell every id apart.
    online = feature_store.online_features(
        feature_store.open_store(feature_store.FeatureStoreConfig.from_env(), project), raw[key].tolist())
    known = online.loc[online[list(project.features.names)].notna().any(axis=1), key].tolist()
    assert len(known) > 100, f"only {len(known)} {project.entity.name}s have online features"
    local = LocalServing(project)
    try:
        local.up(versions[0], port=free_ports(["transformer"])["transformer"], progress=lambda *_: None)
        urls = local.status()["urls"]
        with httpx.Client(timeout=TIMEOUT) as client:
            meta = client.get(f"{urls[f'predictor v{versions[0]}']}/v2/models/{name}").json()
            columns = [(i["name"], "string" if i["datatype"] == "BYTES" else "double") for i in meta["inputs"]]
            yield Topology(name, key, project.entity.type == "integer", project_gate(project).decision_threshold,
                           urls[f"predictor v{versions[0]}"], urls["transformer"], versions[0], columns, known,
                           client, urls)
    finally:
        local.down()


@pytest.fixture(scope="module")
def topology(platform, tmp_path_factory, train_versions):
    """The credit-default example served: string customer ids."""
    from tests.projects import CREDIT, generate_credit_data

    yield from _serve(platform, tmp_path_factory, train_versions, CREDIT, MODEL, generate_credit_data(2_000, seed=43),
                      {"max_iter": 5})


@pytest.fixture(scope="module")
def churn_topology(platform, tmp_path_factory, train_versions):
    """The churn example served: integer subscriber ids (about a quarter of them online: 90 days of 365)."""
    from tests.projects import CHURN, generate_churn_data

    yield from _serve(platform, tmp_path_factory, train_versions, CHURN, CHURN_MODEL,
                      generate_churn_data(1_200, seed=43), {"C": 0.5})


@pytest.fixture(scope="module", params=["credit-default", "churn"])
def any_topology(request):
    return request.getfixturevalue("topology" if request.param == "credit-default" else "churn_topology")


# ==========================================================================================
# the oracle: what the documented request format says about a request
# ==========================================================================================

@dataclass
class Expect:
    status: int  # 200, or the 4xx the request must get
    hints: tuple[str, ...] = ()  # for a 4xx: the error must contain one of these
    rows: int = 0  # for a 200: rows answered
    ids: list | None = None  # transformer V1: the entity ids echoed, in order
    loose: bool = False  # only "200 with the documented shape, or a 4xx naming the problem" is known
    outputs: dict | None = None  # V2: each output answered -> whether in binary (None: both, in JSON)
    request_id: str | None = None  # V2: the "id" the answer must repeat


def ok(rows: int, ids: list | None = None) -> Expect:
    return Expect(200, rows=rows, ids=ids)


def bad(*hints: str, status: int = 400) -> Expect:
    return Expect(status, tuple(hints))


def _finite_number(v: object) -> bool:
    if type(v) not in (int, float):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:  # an integer beyond any float
        return False


def fits(kind: str, v: object) -> bool:
    """Whether a value is acceptable for an input of this kind: a finite number or text, or null."""
    return v is None or (_finite_number(v) if kind in NUMERIC_KINDS else isinstance(v, str))


def flatten(data: list) -> list | None:
    """A [n] or [n, 1] tensor's values; None when the data has another form."""
    if data and all(isinstance(v, list) for v in data):
        return [v[0] for v in data] if all(len(v) == 1 for v in data) else None
    return data


def media_type(headers: dict) -> str:
    value = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    return value.split(";")[0].strip().lower()


def expectation(server: str, protocol: str, headers: dict, content: bytes, top: Topology) -> Expect:
    """What a request must get, from the README's request format and KServe's documented V1/V2 protocol."""
    media = media_type(headers)
    if media not in ("", "application/json", "application/cloudevents+json"):  # none: read as JSON
        return bad("Content-Type", status=415)
    names = {k.lower() for k in headers}
    if {"ce-specversion", "ce-source", "ce-type", "ce-id", "ce-contenttype"} <= names:
        return bad("ce-contenttype")  # a binary CloudEvent KServe cannot decode
    if any(k.startswith("ce-") for k in names):  # a binary CloudEvent, or nearly: KServe's own business
        return Expect(200, loose=True)
    if protocol == "v1":
        try:
            body = orjson.loads(content)  # KServe decodes V1 bodies with orjson
        except orjson.JSONDecodeError:
            return bad("Unrecognized request format")
        if isinstance(body, dict) and {"time", "type", "source", "id", "specversion", "data"} <= set(body):
            return Expect(200, loose=True)  # a structured CloudEvent
        return (predictor_v1 if server == "predictor" else transformer_v1)(body, top)
    if not content:
        return bad("Field required", status=422)
    try:
        body = json.loads(content)  # FastAPI parses V2 bodies with the json module, then pydantic
    except json.JSONDecodeError:
        return bad("JSON decode error", status=422)
    except (ValueError, RecursionError):  # not UTF-8, nested too deeply, an integer of over 4,300 digits
        return bad("not valid JSON")
    if isinstance(body, str):  # pydantic reads a JSON string as the raw binary-tensor form
        return bad("inference-header-content-length")
    from kserve.protocol.rest.v2_datamodels import InferenceRequest

    try:
        request = InferenceRequest.model_validate(body)
    except ValidationError:
        return bad("malformed request body", status=422)
    fp16 = [i.name for i in request.inputs if i.datatype == "FP16" and len(i.data) != 0]
    if fp16:
        return bad(f"input {fp16[0]}".encode("utf-8", "backslashreplace").decode())
    if request.id is not None and not _utf8(request.id):
        return bad('"id" must be valid Unicode text')  # the answer repeats the id
    outputs = v2_outputs(request)
    if isinstance(outputs, Expect):
        return outputs
    tensors = [(i.name, i.datatype.upper(), list(i.shape), i.data) for i in request.inputs]
    expect = (predictor_v2 if server == "predictor" else transformer_v2)(tensors, top)
    if expect.status == 200:
        expect.outputs, expect.request_id = outputs, request.id
        if server == "transformer":
            expect.ids = None
    return expect


def v2_outputs(request) -> "dict | Expect":
    """The outputs a V2 request asks for, each in binary or not (the protocol's binary tensor extension)."""
    binary = (request.parameters or {}).get("binary_data_output", False)
    if not isinstance(binary, bool):
        return bad("binary_data_output must be true or false")
    if not request.outputs:
        return {"probability": binary, "class": binary}
    unknown = sorted({o.name for o in request.outputs} - {"probability", "class"})
    if unknown:
        return bad("unknown outputs requested")
    answered = {}
    for o in request.outputs:
        flag = (o.parameters or {}).get("binary_data", binary)
        if not isinstance(flag, bool):
            return bad("binary_data must be true or false")
        answered[o.name] = flag
    return answered


def predictor_v1(body: object, top: Topology) -> Expect:
    if isinstance(body, str):
        return bad("JSON object", status=415)
    if not isinstance(body, dict):
        return bad("JSON object")
    if "instances" not in body:
        return bad('"instances"')
    rows = body["instances"]
    if not isinstance(rows, list) or not rows:
        return bad('"instances"')
    if len(rows) > MAX_ROWS:
        return bad(f"at most {MAX_ROWS}", status=413)
    names = [n for n, _ in top.columns]
    if all(isinstance(r, dict) for r in rows):
        wrong = [f"instance {i}: " for i, r in enumerate(rows) if set(r) != set(names)]
        if wrong:
            return bad(*wrong)
        values = [[r[n] for n in names] for r in rows]
    elif all(isinstance(r, list) for r in rows):
        wrong = [f"instance {i} has {len(r)} values" for i, r in enumerate(rows) if len(r) != len(names)]
        if wrong:
            return bad(*wrong)
        values = rows
    else:
        return bad("not a mix")
    wrong = [f"instance {i}: {name} must be" for i, row in enumerate(values)
             for (name, kind), v in zip(top.columns, row) if not fits(kind, v)]
    return bad(*wrong) if wrong else ok(len(rows))


def predictor_v2(tensors: list, top: Topology) -> Expect:
    if not tensors:
        return bad('"inputs"')
    kinds = dict(top.columns)
    given_names = [t[0] for t in tensors]
    names = {
        "missing inputs": set(kinds) - set(given_names), "unknown inputs": set(given_names) - set(kinds),
        "repeated inputs": {n for n in given_names if given_names.count(n) > 1}}
    if any(names.values()):
        return bad(*[label for label, found in names.items() if found])
    hints, columns, rows = [], {}, None
    for name, datatype, shape, data in tensors:
        if datatype not in (V2_NUMERIC if kinds[name] in NUMERIC_KINDS else {"BYTES"}):
            hints.append(f"input {name} ({kinds[name]}) has datatype")
            continue
        if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)) or any(d < 0 for d in shape):
            hints.append(f"input {name} has shape")
            continue
        values = flatten(data)
        if values is None or len(values) != shape[0]:
            hints.append(f"input {name} declares shape")
            continue
        if rows is not None and shape[0] != rows:
            hints.append(f"input {name} has {shape[0]} rows")
            continue
        rows, columns[name] = shape[0], values
    if hints:
        return bad(*hints)
    if not rows:
        return bad("no rows")
    if rows > MAX_ROWS:
        return bad(f"at most {MAX_ROWS}", status=413)
    wrong = [f"row {i}: {name} must be" for name, kind in top.columns for i, v in enumerate(columns[name])
             if not fits(kind, v)]
    return bad(*wrong) if wrong else ok(rows)


def _ids_expectation(ids: list, top: Topology) -> Expect:
    if not ids:
        return bad("empty request")
    if len(ids) > MAX_ROWS:
        return bad(f"at most {MAX_ROWS}", status=413)
    if top.integer:  # JSON integers of 64 bits: not text, not floats (not even whole ones), not booleans
        if any(type(v) is not int or not INT64[0] <= v <= INT64[1] for v in ids):
            return bad(f"{top.entity} must be a whole number (a 64-bit integer id)")
    elif any(not isinstance(v, str) or not v.strip() for v in ids):
        return bad(f"{top.entity} must be a non-empty string")
    elif any(not _utf8(v) for v in ids):
        return bad(f"{top.entity} must be valid Unicode text")
    known = set(top.known)
    unknown = [v for v in ids if v not in known]
    return bad(f"{top.entity} {unknown[0]}", status=422) if unknown else ok(len(ids), ids)


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def transformer_v1(body: object, top: Topology) -> Expect:
    if not isinstance(body, dict) or not isinstance(body.get("instances"), list) or not body["instances"]:
        return bad('"instances"')
    for i, row in enumerate(body["instances"]):
        if not isinstance(row, dict) or set(row) != {top.entity}:
            return bad(f"instance {i} must be")
    return _ids_expectation([row[top.entity] for row in body["instances"]], top)


def transformer_v2(tensors: list, top: Topology) -> Expect:
    if [t[0] for t in tensors] != [top.entity]:
        return bad("exactly one input")
    _, datatype, shape, data = tensors[0]
    if datatype not in (ID_INTEGER_TENSORS if top.integer else {"BYTES"}):
        return bad(f"must be a {'INT64' if top.integer else 'BYTES'} tensor")
    values = flatten(data)
    if values is None or shape not in ([len(values)], [len(values), 1]):
        return bad("declares shape")
    if top.integer:
        low, high = ID_INTEGER_TENSORS[datatype]
        if any(type(v) is int and not low <= v <= high for v in values):
            return bad("outside")
    return _ids_expectation(values, top)


# ==========================================================================================
# checking an answer against the expectation
# ==========================================================================================

def error_of(resp: httpx.Response) -> str:
    """The ``error`` of a refusal; fails unless it is a JSON object with a non-empty error text."""
    try:
        body = resp.json()
    except ValueError:
        pytest.fail(f"{resp.status_code} answer is not JSON: {resp.text[:300]!r}")
    assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"].strip(), \
        f"{resp.status_code} answer without an error text: {resp.text[:300]!r}"
    return body["error"]


def check(server: str, protocol: str, headers: dict, content: bytes, top: Topology,
          request_id: str | None = None, target: str | None = None) -> httpx.Response:
    """Send one request; assert what the oracle says about it; count it under ``target``."""
    expect = expectation(server, protocol, headers, content, top)
    resp = _send_and_check(server, protocol, headers, content, top, request_id, expect)
    if target is not None:
        CASES[target] += 1
        OUTCOMES[target][resp.status_code] += 1
    return resp


def _send_and_check(server: str, protocol: str, headers: dict, content: bytes, top: Topology,
                    request_id: str | None, expect: Expect) -> httpx.Response:
    sent = dict(headers) | ({"x-request-id": request_id} if request_id else {})
    resp = top.client.post(top.url(server, protocol), content=content, headers=sent)
    what = f"{server} {protocol} {resp.status_code}: {resp.text[:400]!r}\nrequest {content[:3000]!r} {headers}"
    assert resp.status_code < 500, what
    if expect.loose:
        assert resp.status_code == 200 or 400 <= resp.status_code < 500, what
        if resp.status_code == 200:
            _check_answer(server, protocol, resp, None, top, None)
        else:
            error_of(resp)
        return resp
    if expect.status != 200:
        assert resp.status_code == expect.status, f"expected {expect.status}, {what}"
        error = error_of(resp)
        assert not expect.hints or any(h in error for h in expect.hints), \
            f"the error names none of {expect.hints[:5]}: {error[:300]!r}"
        return resp
    assert resp.status_code == 200, f"expected 200 for {expect.rows} rows, {what}"
    _check_answer(server, protocol, resp, expect, top, request_id)
    return resp


def _check_answer(server: str, protocol: str, resp: httpx.Response, expect: Expect | None, top: Topology,
                  request_id: str | None) -> None:
    """A 200 has the documented shape: one probability and class per row, and the model version."""
    header_length = resp.headers.get("inference-header-content-length")
    body = orjson.loads(resp.content[:int(header_length)] if header_length else resp.content)
    if "specversion" in body and "data" in body:  # answered as a CloudEvent (the request was one)
        body = body["data"]
    assert resp.headers.get(VERSION_HEADER) == top.version, resp.headers
    assert body["model_name"] == top.model and body["model_version"] == top.version, body
    if protocol == "v1":
        predictions = body["predictions"]
        probability = [p["probability"] for p in predictions]
        classes = [p["class"] for p in predictions]
        if server == "transformer":
            assert body["request_id"] and resp.headers["x-request-id"] == body["request_id"]
            if request_id:
                assert body["request_id"] == request_id
            if expect is not None and expect.ids is not None:
                assert [p[top.entity] for p in predictions] == expect.ids
    else:
        probability, classes = _v2_answer(server, resp, body, expect, request_id)
    if expect is not None:
        assert probability is None or len(probability) == expect.rows, body
        assert classes is None or len(classes) == expect.rows, body
    if probability is not None:
        assert all(isinstance(p, float) and 0.0 <= p <= 1.0 for p in probability), probability
    if probability is not None and classes is not None:
        assert classes == [int(p >= top.threshold) for p in probability], (probability, classes)


def _v2_answer(server: str, resp: httpx.Response, body: dict, expect: Expect | None,
               request_id: str | None) -> tuple[list | None, list | None]:
    """A V2 answer's probabilities and classes (None where not asked for), read as tritonclient reads them:
    the outputs asked for, each in JSON or in binary as asked, and the request's id repeated."""
    import tritonclient.http as triton

    header_length = resp.headers.get("inference-header-content-length")
    asked = expect.outputs if expect is not None and expect.outputs is not None else None
    assert (header_length is not None) == bool(asked and any(asked.values())), (resp.headers, asked)
    result = triton.InferenceServerClient.parse_response_body(
        resp.content, header_length=int(header_length) if header_length else None)
    outputs = {o["name"]: o for o in body["outputs"]}
    if asked is not None:
        assert list(outputs) == list(asked), (list(outputs), asked)
        assert {n: "data" not in o for n, o in outputs.items()} == asked, outputs
    assert {o["datatype"] for n, o in outputs.items()} <= {"FP64", "INT64"}
    assert all(o["datatype"] == ("FP64" if n == "probability" else "INT64") for n, o in outputs.items()), outputs
    assert len({tuple(o["shape"]) for o in outputs.values()}) == 1, outputs
    wanted_id = (expect.request_id if expect is not None else None) or \
        (request_id if server == "transformer" else None)
    assert body["id"] == wanted_id if wanted_id else body["id"], (body["id"], wanted_id)
    values = {n: result.as_numpy(n).tolist() if n in outputs else None for n in ("probability", "class")}
    return values["probability"], values["class"]


JSON = {"content-type": "application/json"}


def dumps(body: object) -> bytes:
    """JSON text as a lax client writes it: NaN and Infinity tokens, escaped lone surrogates, huge integers."""
    return json.dumps(body, allow_nan=True).encode()


# ==========================================================================================
# request strategies
# ==========================================================================================

CATEGORIES = {"home_ownership": ["RENT", "OWN", "MORTGAGE"], "loan_purpose": ["credit_card", "car", "home"],
              "region": ["north", "south", "east", "west"], "employment_type": ["salaried", "self_employed"]}
NAN_LIKE = ["NaN", "nan", "Infinity", "-Infinity", "inf", "1e309", "", " ", "52000", "null", "None", "0x1F",
            "1,5", "\u0661\u0662", "true"]
surrogates = st.lists(st.integers(0xD800, 0xDFFF).map(chr), min_size=1, max_size=3).map("".join)
odd_text = st.one_of(st.text(max_size=20), st.sampled_from(NAN_LIKE), surrogates,
                     st.sampled_from(["\x00", "é" * 3000, "\u202e\u200b", "🦄" * 4, "a\nb\tc"]))
finite = st.one_of(st.integers(-2**63, 2**64 - 1), st.floats(allow_nan=False, allow_infinity=False),
                   st.sampled_from([0, -0.0, 1e308, -1e308, 5e-324, 2**53 + 1]))
huge = st.one_of(st.integers(2**64, 10**30), st.integers(-10**30, -2**63 - 1),
                 st.sampled_from([10**308, 10**309, -(10**400)]))
non_finite = st.sampled_from([math.nan, math.inf, -math.inf])
containers = st.one_of(st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=4), st.integers(),
                                                                              max_size=2))
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=False,
                                                                              allow_infinity=False),
              st.text(max_size=10)),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)


def good_value(name: str, kind: str):
    if kind in NUMERIC_KINDS:
        return st.one_of(finite, st.none())
    return st.one_of(st.sampled_from(CATEGORIES.get(name, ["x"])), st.text(max_size=12), st.none())


def odd_value(kind: str):
    if kind in NUMERIC_KINDS:
        return st.one_of(huge, non_finite, st.sampled_from(NAN_LIKE), st.booleans(), odd_text, containers)
    return st.one_of(finite, huge, st.booleans(), containers, odd_text, non_finite)


@st.composite
def rows_of(draw, columns, n_min=1, n_max=6):
    """Rows of feature values; most values good, some odd (how many depends on a drawn mode)."""
    mode = draw(st.sampled_from(["good", "good", "good", "one odd", "odd"]))
    rows = []
    for _ in range(draw(st.integers(n_min, n_max))):
        row = {name: draw(good_value(name, kind)) for name, kind in columns}
        if mode == "one odd" and not rows or mode == "odd":
            name, kind = draw(st.sampled_from(columns))
            row[name] = draw(odd_value(kind))
        rows.append(row)
    return rows


@st.composite
def predictor_v1_requests(draw, columns):
    names = [n for n, _ in columns]
    rows = draw(rows_of(columns, 0 if draw(st.integers(0, 9)) == 0 else 1))
    form = draw(st.sampled_from(["objects"] * 6 + ["values", "mixed", "special"]))
    if form == "special":
        body = draw(st.sampled_from([
            {"instances": {}}, {"instances": None}, {"instances": "x"}, {"rows": rows}, {"inputs": rows}, [rows],
            {"instances": [1, 2]}, {"instances": [None]}, "instances",
            {"instances": [[row[n] for n in names] for row in rows] + [{}]}, {"instances": [[]] * (MAX_ROWS + 1)}]))
        return dumps(body)
    if form == "values":
        instances = [[row[n] for n in names] for row in rows]
        for r in instances:
            if draw(st.integers(0, 7)) == 0:
                if draw(st.booleans()):
                    del r[draw(st.integers(0, len(r) - 1))]
                else:
                    r.append(1.0)
    else:
        instances = [dict(r) for r in rows]
        if instances and draw(st.integers(0, 5)) == 5:  # one instance with a field missing or one too many
            r = instances[draw(st.integers(0, len(instances) - 1))]
            if draw(st.booleans()):
                r.pop(draw(st.sampled_from(names)))
            else:
                r[draw(st.one_of(st.text(max_size=12), st.sampled_from(["Age", "income ", "", "customer_id", "subscriber_id"])))] = 1.0
        if form == "mixed" and instances:
            instances[-1] = [instances[-1].get(n) for n in names]
    body = {"instances": instances}
    if draw(st.integers(0, 5)) == 0:
        body[draw(st.sampled_from(["id", "parameters", "inputs", "signature_name", "instance"]))] = \
            draw(json_values)
    text = dumps(body)
    if instances and isinstance(instances[0], dict) and draw(st.integers(0, 5)) == 0:
        # the same key twice in one JSON object: the last one counts
        name, kind = draw(st.sampled_from(columns))
        text = text.replace(b'{"instances": [{', b'{"instances": [{' + dumps(name)[:-1] + b'": ' +
                            dumps(draw(odd_value(kind))) + b", ", 1)
    return text


@st.composite
def predictor_v2_requests(draw, columns):
    rows = draw(rows_of(columns, 0 if draw(st.integers(0, 9)) == 0 else 1))
    n = len(rows)
    inputs = []
    for name, kind in columns:
        tensor = {"name": name, "datatype": "BYTES" if kind == "string" else "FP64", "shape": [n],
                  "data": [row[name] for row in rows]}
        if kind != "string" and draw(st.integers(0, 4)) == 0:
            tensor["datatype"] = draw(st.sampled_from(sorted(V2_NUMERIC) + ["fp64", "int64"]))
        if draw(st.integers(0, 4)) == 0:
            tensor["shape"], tensor["data"] = [n, 1], [[v] for v in tensor["data"]]
        inputs.append(tensor)
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):
        i = draw(st.integers(0, len(inputs) - 1))
        tensor = inputs[i]
        change = draw(st.sampled_from(["datatype", "shape", "data", "drop", "repeat", "extra", "field", "name"]))
        if change == "datatype":
            tensor["datatype"] = draw(st.one_of(st.sampled_from(["BYTES", "FP64", "FP16", "BOOL", "bytes", "",
                                                                  "STRING", "fp16"]), st.text(max_size=6)))
        elif change == "shape":
            tensor["shape"] = draw(st.one_of(st.lists(st.integers(-2, 3), max_size=3),
                                             st.sampled_from([[n + 1], [n, 2], [10**20], [n, 1, 1], []])))
        elif change == "data":
            tensor["data"] = draw(st.one_of(st.lists(odd_value("double"), max_size=3),
                                            st.just([[1.0, 2.0]] * n), st.just([[]] * n),
                                            st.lists(st.lists(st.floats(), max_size=2), max_size=3)))
        elif change == "drop":
            inputs.pop(i)
        elif change == "repeat":
            inputs.append(dict(tensor))
        elif change == "extra":
            inputs.append({"name": draw(odd_text), "datatype": "FP64", "shape": [n], "data": [1.0] * n})
        elif change == "field":  # a wrong type or a missing field: pydantic refuses the body
            key = draw(st.sampled_from(["name", "datatype", "shape", "data", "parameters"]))
            if draw(st.booleans()):
                tensor.pop(key, None)
            else:
                tensor[key] = draw(json_values)
        else:
            name = str(tensor.get("name", ""))
            tensor["name"] = draw(st.one_of(st.sampled_from([name.upper(), name + " ", "customer_id", "subscriber_id"]), odd_text))
    body = {"inputs": inputs}
    if draw(st.integers(0, 4)) == 0:
        extra = draw(st.sampled_from(["id", "parameters", "outputs"]))
        body[extra] = draw(st.one_of(odd_text, json_values, st.just([{"name": "probability"}]),
                                     st.just({"binary_data_output": True})))
    return dumps(body)


@st.composite
def customer_ids(draw, known):
    """Known ids mostly; sometimes well-formed unknown ones, odd text or values of the wrong type."""
    kind = draw(st.sampled_from(["known"] * 12 + ["unknown", "odd", "wrong type"]))
    if kind == "known":
        return draw(st.sampled_from(known))
    if kind == "unknown":  # generated ids are C0000001..C0002000
        c = draw(st.sampled_from(known))
        return draw(st.sampled_from([f"C{draw(st.integers(10_000, 9_999_999)):07d}", c.lower(), f" {c}", f"{c}\n",
                                     c + "\x00", c[:-1]]))
    if kind == "odd":
        return draw(odd_text)
    return draw(st.one_of(st.integers(), st.floats(allow_nan=False), st.none(), st.booleans(), containers))


@st.composite
def subscriber_ids(draw, known):
    """Integer ids: known ones mostly; sometimes unknown integers (in and beyond 64 bits), the id as text or as a
    float, booleans, odd text or containers."""
    kind = draw(st.sampled_from(["known"] * 12 + ["unknown", "unknown", "as text", "wrong type", "odd"]))
    if kind == "known":
        return draw(st.sampled_from(known))
    c = draw(st.sampled_from(known))
    if kind == "unknown":  # generated ids are 8-digit integers
        return draw(st.one_of(st.sampled_from([c + 1, c - 1, -c, 0, -1, INT64[0], INT64[1], INT64[1] + 1,
                                               INT64[0] - 1, 2 ** 64, c * 10 ** 12]),
                              st.integers(0, 9_999_999), st.integers(100_000_000, 2 ** 63 - 1)))
    if kind == "as text":
        return draw(st.sampled_from([str(c), f" {c}", f"{c}.0", hex(c), ""]))
    if kind == "wrong type":
        return draw(st.one_of(st.sampled_from([float(c), c + 0.5, True, False, None, math.inf]),
                              st.floats(allow_nan=False), containers))
    return draw(odd_text)


def entity_ids(top: Topology):
    return subscriber_ids(top.known) if top.integer else customer_ids(top.known)


@st.composite
def transformer_v1_requests(draw, top: Topology):
    key, known = top.entity, top.known
    ids = draw(st.lists(entity_ids(top), min_size=0 if draw(st.integers(0, 19)) == 19 else 1, max_size=6))
    rows = [{key: c} for c in ids]
    if rows and draw(st.integers(0, 6)) == 6:  # one instance with a feature, a misnamed id or nothing
        r = rows[draw(st.integers(0, len(rows) - 1))]
        change = draw(st.sampled_from(["feature", "name", "empty"]))
        if change == "feature":
            r[top.columns[0][0]] = 52_000.0
        elif change == "name":
            r["id"] = r.pop(key)
        else:
            r.clear()
    body: object = {"instances": rows}
    if draw(st.integers(0, 14)) == 14:
        body = draw(st.sampled_from([
            {"instances": ids}, {"instances": None}, {key: ids}, [{key: c} for c in ids],
            {"instances": [[c] for c in ids] or [[]]}, {"instances": [{key: known[0]}] * (MAX_ROWS + 1)}]))
    elif draw(st.integers(0, 5)) == 0:
        body["parameters"] = draw(json_values)
    return dumps(body)


@st.composite
def transformer_v2_requests(draw, top: Topology):
    key, known = top.entity, top.known
    ids = draw(st.lists(entity_ids(top), min_size=0 if draw(st.integers(0, 9)) == 0 else 1, max_size=6))
    tensor = {"name": key, "datatype": "INT64" if top.integer else "BYTES", "shape": [len(ids)], "data": ids}
    change = draw(st.sampled_from(["none"] * 5 + ["nested", "datatype", "shape", "name", "repeat", "extra",
                                                  "flat [n, 1]", "big"]))  # big: 10,001 ids
    inputs = [tensor]
    if change == "nested":
        tensor["shape"], tensor["data"] = [len(ids), 1], [[c] for c in ids]
    elif change == "flat [n, 1]":
        tensor["shape"] = [len(ids), 1]
    elif change == "datatype":
        tensor["datatype"] = draw(st.sampled_from(["bytes", "BYTES", "FP64", "INT64", "int64", "INT32", "UINT8",
                                                   "UINT64", "BOOL", "FP16", "STRING", ""]))
    elif change == "shape":
        tensor["shape"] = draw(st.one_of(st.lists(st.integers(-1, 8), max_size=3), st.just([10**20])))
    elif change == "name":
        tensor["name"] = draw(st.one_of(st.sampled_from([key.split("_")[0], key.upper(), key + " ", "",
                                                         "customer_id", "subscriber_id"]), odd_text))
    elif change == "repeat":
        inputs.append({**tensor, "data": list(reversed(ids))})
    elif change == "extra":
        inputs.append({"name": top.columns[0][0], "datatype": "FP64", "shape": [len(ids)], "data": [1.0] * len(ids)})
    elif change == "big":
        tensor["shape"], tensor["data"] = [MAX_ROWS + 1], [known[0]] * (MAX_ROWS + 1)
    body = {"inputs": inputs}
    if draw(st.integers(0, 4)) == 0:
        body["id"] = draw(st.one_of(odd_text, st.integers()))
    return dumps(body)


request_ids = st.one_of(st.none(), st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1,
                                           max_size=40))

CONTENT_TYPES = ["application/json; charset=utf-8", "Application/JSON", "APPLICATION/JSON; foo=bar",
                 "application/json;", "application/json ;x=y", "application/cloudevents+json",
                 "application/cloudevents+json; charset=UTF-8", "", "text/plain", "application/ld+json",
                 "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/xml",
                 "json", "application/json, text/plain", "application/jsonx", "*/*", "application/octet-stream"]


@st.composite
def garbage(draw, server, top: Topology):
    """(protocol, headers, body): random bytes or JSON, odd Content-Types, truncated or mutated bodies."""
    protocol = draw(st.sampled_from(["v1", "v2"]))
    good = {("predictor", "v1"): dumps({"instances": [{n: (1.0 if k != "string" else "x") for n, k in
                                                       top.columns}]}),
            ("predictor", "v2"): dumps({"inputs": [{"name": n, "datatype": "FP64" if k != "string" else "BYTES",
                                                    "shape": [1], "data": [1.0 if k != "string" else "x"]}
                                                   for n, k in top.columns]}),
            ("transformer", "v1"): dumps({"instances": [{top.entity: top.known[0]}]}),
            ("transformer", "v2"): dumps({"inputs": [{"name": top.entity,
                                                      "datatype": "INT64" if top.integer else "BYTES", "shape": [1],
                                                      "data": [top.known[0]]}]})}[(server, protocol)]
    kind = draw(st.sampled_from(["bytes", "json", "content-type", "truncated", "mutated", "cloudevent"]))
    headers = dict(JSON)
    if kind == "bytes":
        body = draw(st.one_of(st.binary(max_size=200), st.sampled_from([b"", b"\xef\xbb\xbf" + good,
                                                                        good.decode().encode("utf-16"),
                                                                        b"\xff" + good, b"[" * 5000])))
    elif kind == "json":
        body = dumps(draw(json_values))
    elif kind == "content-type":
        body = good
        headers = {"content-type": draw(st.one_of(st.sampled_from(CONTENT_TYPES),
                                                  st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E),
                                                          max_size=30))).strip()}
        if draw(st.integers(0, 5)) == 0:
            headers = {}
    elif kind == "truncated":
        body = good[:draw(st.integers(0, len(good) - 1))]
    elif kind == "mutated":
        body = bytearray(good)
        for _ in range(draw(st.integers(1, 3))):
            body[draw(st.integers(0, len(body) - 1))] = draw(st.integers(0, 255))
        body = bytes(body)
    else:
        body = good
        headers |= draw(st.dictionaries(st.sampled_from(["ce-specversion", "ce-id", "ce-source", "ce-type",
                                                         "ce-time", "ce-contenttype"]),
                                        st.one_of(st.sampled_from(["1.0", "0.3", "x", "application/json"]),
                                                  st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E),
                                                          max_size=10)), min_size=1))
    return protocol, headers, body


# ==========================================================================================
# 1. predictor
# ==========================================================================================

@pytest.mark.platform
@fuzz("predictor v1")
@given(data=st.data())
def test_fuzz_predictor_v1(topology, data):
    check("predictor", "v1", JSON, data.draw(predictor_v1_requests(topology.columns)), topology,
          target="predictor v1")


@pytest.mark.platform
@fuzz("predictor v2")
@given(data=st.data())
def test_fuzz_predictor_v2(topology, data):
    check("predictor", "v2", JSON, data.draw(predictor_v2_requests(topology.columns)), topology,
          target="predictor v2")


@pytest.mark.platform
@fuzz("predictor garbage")
@given(data=st.data())
def test_fuzz_predictor_garbage(topology, data):
    protocol, headers, body = data.draw(garbage("predictor", topology))
    check("predictor", protocol, headers, body, topology, target="predictor garbage")


# ==========================================================================================
# 2. transformer
# ==========================================================================================

@pytest.mark.platform
@fuzz("transformer v1")
@given(data=st.data())
def test_fuzz_transformer_v1(topology, data):
    check("transformer", "v1", JSON, data.draw(transformer_v1_requests(topology)), topology,
          request_id=data.draw(request_ids), target="transformer v1")


@pytest.mark.platform
@fuzz("transformer v2")
@given(data=st.data())
def test_fuzz_transformer_v2(topology, data):
    check("transformer", "v2", JSON, data.draw(transformer_v2_requests(topology)), topology,
          target="transformer v2")


@pytest.mark.platform
@fuzz("transformer garbage")
@given(data=st.data())
def test_fuzz_transformer_garbage(topology, data):
    protocol, headers, body = data.draw(garbage("transformer", topology))
    check("transformer", protocol, headers, body, topology, target="transformer garbage")


# ==========================================================================================
# 2b. binary tensors (the V2 binary tensor data extension), as tritonclient frames them
# ==========================================================================================

FRAMING = ["none"] * 4 + ["header-length", "size", "truncate", "append", "flip", "header-json", "v1", "type"]


@st.composite
def binary_requests(draw, server: str, top: Topology):
    """(path protocol, headers, body, framing changed): a request tritonclient builds, its framing then perhaps
    broken: a header length that lies, a binary_data_size off, bytes cut, added or flipped, a Content-Type."""
    import numpy as np
    import tritonclient.http as triton

    rows = draw(st.integers(1, 4))
    tensors = []
    if server == "predictor":
        for name, kind in top.columns:
            if kind == "string":
                values = np.array([draw(st.sampled_from(["RENT", "OWN", "x", "", "é"])).encode()
                                   for _ in range(rows)], dtype=np.object_)
                tensor = triton.InferInput(name, [rows], "BYTES")
            else:  # NaN is a missing value in a binary tensor; JSON has no NaN (refused, as in V1)
                binary = draw(st.integers(0, 5)) > 0
                values = np.array(draw(st.lists(st.one_of(st.floats(-1e6, 1e6), st.just(float("nan")))
                                                if binary else st.floats(-1e6, 1e6), min_size=rows, max_size=rows)),
                                  dtype=np.float64)
                tensor = triton.InferInput(name, [rows], "FP64")
            tensor.set_data_from_numpy(values, binary_data=kind == "string" or binary)
            tensors.append(tensor)
    else:
        ids = [draw(st.sampled_from(top.known)) for _ in range(rows)]
        if top.integer:
            tensor = triton.InferInput(top.entity, [rows], "INT64")
            tensor.set_data_from_numpy(np.array(ids, dtype=np.int64))
        else:
            tensor = triton.InferInput(top.entity, [rows], "BYTES")
            tensor.set_data_from_numpy(np.array([i.encode() for i in ids], dtype=np.object_))
        tensors.append(tensor)
    outputs = draw(st.sampled_from([None, [triton.InferRequestedOutput("probability", binary_data=False)],
                                    [triton.InferRequestedOutput("class"), triton.InferRequestedOutput("probability")]]))
    body, json_size = triton.InferenceServerClient.generate_request_body(
        tensors, outputs=outputs, request_id=draw(st.sampled_from(["", "bin-1", "ü-id"])))
    headers = {"inference-header-content-length": str(json_size)} if json_size is not None else {}
    change, protocol, original = draw(st.sampled_from(FRAMING)), "v2", (dict(headers), body)
    if change == "header-length" and json_size is not None:
        headers["inference-header-content-length"] = draw(st.sampled_from(
            [str(json_size + draw(st.integers(-20, 20))), "0", "-1", str(len(body) + 1), "x", "+12", "1_2", "0x1f",
             str(10**30)]))
    elif change == "size":
        head = json.loads(body[:json_size] if json_size else body)
        sized = [t for t in head["inputs"] if "binary_data_size" in t.get("parameters", {})]
        if sized:
            sized[draw(st.integers(0, len(sized) - 1))]["parameters"]["binary_data_size"] += draw(
                st.sampled_from([-1, 1, -8, 8, 10**9]))
            new_head = json.dumps(head).encode()
            body = new_head + body[json_size:]
            headers["inference-header-content-length"] = str(len(new_head))
    elif change == "truncate":
        body = body[:draw(st.integers(0, len(body) - 1))]
    elif change == "append":
        body += draw(st.binary(min_size=1, max_size=16))
    elif change == "flip":
        body = bytearray(body)
        body[draw(st.integers(0, len(body) - 1))] ^= draw(st.integers(1, 255))
        body = bytes(body)
    elif change == "header-json":
        start = draw(st.integers(0, max(0, (json_size or len(body)) - 1)))
        body = body[:start] + draw(st.sampled_from([b"{", b"]", b"\x00", b'"'])) + body[start + 1:]
    elif change == "v1":
        protocol = "v1"
    elif change == "type":
        headers["content-type"] = draw(st.sampled_from(["application/octet-stream", "application/json", "text/plain",
                                                        "application/x-binary"]))
    if change == "type":  # what a binary body (or a JSON one) may be sent as: anything else is a change
        allowed = ("application/json", "application/octet-stream") if json_size is not None else ("application/json",)
        changed = headers["content-type"] not in allowed
    else:
        changed = protocol == "v1" or (headers, body) != original
    return protocol, headers, body, changed


def check_binary(server: str, draw_result: tuple, top: Topology, target: str) -> None:
    """A request as tritonclient frames it must be answered (what it asks, as a JSON twin would be); a broken
    framing gets a 4xx with an error, or, where it happens to still frame a valid request, an answer."""
    protocol, headers, body, changed = draw_result
    resp = top.client.post(top.url(server, protocol), content=body, headers=headers)
    what = f"{server} binary {resp.status_code}: {resp.text[:400]!r}\nrequest {body[:2000]!r} {headers}"
    assert resp.status_code < 500, what
    if resp.status_code == 200:
        _check_answer(server, "v2", resp, _changed_expectation(server, headers, body, top) if changed
                      else _binary_expectation(server, headers, body, top), top, None)
    else:
        assert changed, f"a request tritonclient framed was refused: {what}"
        error_of(resp)
    CASES[target] += 1
    OUTCOMES[target][resp.status_code] += 1


def _changed_expectation(server: str, headers: dict, body: bytes, top: Topology) -> Expect | None:
    """What a changed request that was answered asks, when its JSON header still reads (a flipped byte may have
    renamed "id" or a parameter, which the answer then ignores); None when it does not."""
    try:
        return _binary_expectation(server, headers, body, top)
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return None


def _binary_expectation(server: str, headers: dict, body: bytes, top: Topology) -> Expect:
    """What the unbroken request asks: its rows, outputs (binary or not) and id."""
    length = headers.get("inference-header-content-length")
    head = json.loads(body[:int(length)] if length else body)
    binary = head.get("parameters", {}).get("binary_data_output", False)
    outputs = ({o["name"]: o.get("parameters", {}).get("binary_data", binary) for o in head["outputs"]}
               if head.get("outputs") else {"probability": binary, "class": binary})
    return Expect(200, rows=head["inputs"][0]["shape"][0], outputs=outputs, request_id=head.get("id"))


@pytest.mark.platform
@fuzz("predictor binary")
@given(data=st.data())
def test_fuzz_predictor_binary(topology, data):
    check_binary("predictor", data.draw(binary_requests("predictor", topology)), topology, "predictor binary")


@pytest.mark.platform
@fuzz("transformer binary")
@given(data=st.data())
def test_fuzz_transformer_binary(topology, data):
    check_binary("transformer", data.draw(binary_requests("transformer", topology)), topology, "transformer binary")


# ==========================================================================================
# 2c. the churn project: integer entity ids, and a model Pipeline from the project's build hook
# ==========================================================================================

@pytest.mark.platform
@fuzz("churn predictor v1")
@given(data=st.data())
def test_fuzz_churn_predictor_v1(churn_topology, data):
    check("predictor", "v1", JSON, data.draw(predictor_v1_requests(churn_topology.columns)), churn_topology,
          target="churn predictor v1")


@pytest.mark.platform
@fuzz("churn transformer v1")
@given(data=st.data())
def test_fuzz_churn_transformer_v1(churn_topology, data):
    check("transformer", "v1", JSON, data.draw(transformer_v1_requests(churn_topology)), churn_topology,
          request_id=data.draw(request_ids), target="churn transformer v1")


@pytest.mark.platform
@fuzz("churn transformer v2")
@given(data=st.data())
def test_fuzz_churn_transformer_v2(churn_topology, data):
    check("transformer", "v2", JSON, data.draw(transformer_v2_requests(churn_topology)), churn_topology,
          target="churn transformer v2")


@pytest.mark.platform
@fuzz("churn transformer binary")
@given(data=st.data())
def test_fuzz_churn_transformer_binary(churn_topology, data):
    check_binary("transformer", data.draw(binary_requests("transformer", churn_topology)), churn_topology,
                 "churn transformer binary")


# ==========================================================================================
# 3. the data contract loader
# ==========================================================================================

WHERE = "contracts/fuzz.yaml"
BASE = {
    "dataset": "fuzz", "version": 2, "description": "fuzzed", "key": ["id"], "timestamp": "ts",
    "rows": {"min": 1, "max": 1000}, "allow_extra_columns": False, "reference_profile": "fuzz.profile.json",
    "drift": {"numeric": {"method": "psi", "threshold": 0.2},
              "categorical": {"method": "jensenshannon", "threshold": 0.1}},
    "severity": {"drift": "warning", "schema": "error"},
    "columns": {
        "id": {"type": "string", "nullable": False},
        "ts": {"type": "timestamp", "nullable": False},
        "x": {"type": "float", "nullable": True, "max_missing": 0.1, "min": 0.0, "max": 10.0,
              "drift": {"method": "jensenshannon", "threshold": 0.3}},
        "n": {"type": "integer", "min": 0, "max": 100, "drift": False},
        "c": {"type": "category", "values": ["a", "b"], "drift": {"method": "chisquare"}},
        "b": {"type": "boolean"},
    },
}
WORDS = [*TYPES, *SEVERITIES, *CHECK_FAMILIES, *stats.NUMERIC_METHODS, *stats.CATEGORICAL_METHODS, "id", "ts",
         "x", "n", "c", "b", "", "NaN", "inf", "null", "yes", "method", "threshold", "enabled", "min", "max"]
yaml_keys = st.one_of(st.sampled_from(WORDS), st.text(max_size=8), st.integers(), st.booleans(), st.none(),
                      st.floats(allow_nan=False), st.dates())
yaml_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(10**300, 10**400), st.floats(), st.sampled_from(WORDS),
    st.text(max_size=12), st.dates(), st.datetimes(), st.binary(max_size=6), st.floats(-2, 2),
    st.integers(-3, 3))
plausible = st.one_of(st.sampled_from(WORDS), st.floats(0, 1), st.integers(0, 100), st.booleans(), st.none(),
                      st.lists(st.sampled_from(WORDS), min_size=1, max_size=3))
yaml_values = st.recursive(
    st.one_of(yaml_scalars, st.sets(st.text(max_size=3), max_size=3)),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(yaml_keys, inner, max_size=4), max_leaves=10)


def _paths(node, prefix=()):
    """Every key path of a nested mapping (to change or delete) and every mapping's path (to add to)."""
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))


big_finite = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-10**300, 10**300))


@st.composite
def valid_columns(draw):
    """Settings of a column the loader must accept, with odd but legal values."""
    kind = draw(st.sampled_from(TYPES))
    column = {"type": kind}
    if draw(st.booleans()):
        column["nullable"] = draw(st.booleans())
    if draw(st.booleans()):
        column["max_missing"] = draw(st.one_of(st.floats(0, 1), st.sampled_from([0, 1])))
    if kind in ("integer", "float") and draw(st.booleans()):
        column["min"], column["max"] = sorted([draw(big_finite), draw(big_finite)])
    if kind == "category" and draw(st.booleans()):
        column["values"] = draw(st.lists(st.one_of(st.text(max_size=10), st.integers(), big_finite), min_size=1,
                                         max_size=5))
    if kind != "string" and kind != "timestamp" and draw(st.booleans()):
        methods = stats.NUMERIC_METHODS if kind in ("integer", "float") else stats.CATEGORICAL_METHODS
        column["drift"] = draw(st.one_of(st.just(False), st.fixed_dictionaries(
            {}, optional={"method": st.sampled_from(methods), "threshold": st.floats(0, 10**6),
                          "enabled": st.booleans()})))
    return column


@st.composite
def valid_edits(draw, doc):
    """Changes the loader must accept: new columns with odd names, unicode text, huge counts and bounds."""
    for _ in range(draw(st.integers(1, 3))):
        edit = draw(st.sampled_from(["column", "text", "rows", "severity", "drift"]))
        if edit == "column":
            doc["columns"][draw(st.one_of(st.text(min_size=1, max_size=12), st.integers(), st.dates()))] = \
                draw(valid_columns())
        elif edit == "text":
            doc[draw(st.sampled_from(["dataset", "description"]))] = draw(st.text(min_size=1, max_size=40))
        elif edit == "rows":
            doc["rows"] = dict(zip(["min", "max"], sorted(draw(st.lists(st.integers(0, 10**30), min_size=2,
                                                                          max_size=2)))))
        elif edit == "severity":
            doc["severity"][draw(st.sampled_from(CHECK_FAMILIES))] = draw(st.sampled_from(SEVERITIES))
        else:
            doc["drift"]["numeric"]["threshold"] = draw(st.floats(0, 1e300))
    return doc


@st.composite
def contract_docs(draw):
    """The base contract with odd but legal changes (a third), or with one to four changes (set, delete or add
    a field anywhere) to odd values; now and then not a contract at all."""
    doc = copy.deepcopy(BASE)
    if draw(st.integers(0, 2)) == 0:
        return draw(valid_edits(doc))
    for _ in range(draw(st.sampled_from([1, 1, 2, 4]))):
        paths = [p for p in _paths(doc) if p]
        path = draw(st.sampled_from(paths))
        parent = doc
        for k in path[:-1]:
            parent = parent[k]
        if not isinstance(parent, dict):
            continue
        action = draw(st.sampled_from(["set", "set", "delete", "add"]))
        if action == "delete":
            parent.pop(path[-1], None)
        elif action == "add" and isinstance(parent.get(path[-1]), dict):
            parent[path[-1]][draw(yaml_keys)] = draw(st.one_of(plausible, yaml_values))
        else:
            parent[path[-1]] = draw(st.one_of(plausible, yaml_values))
    if draw(st.integers(0, 9)) == 0:
        return draw(yaml_values)  # not a contract at all
    return doc


def assert_well_formed(c: Contract) -> None:
    """What strict loading promises about a contract it returns, and what its users rely on."""
    assert isinstance(c.dataset, str) and c.dataset
    assert type(c.version) is int and isinstance(c.description, str)
    assert isinstance(c.columns, dict) and c.columns
    for name, spec in c.columns.items():
        assert isinstance(name, str) and spec.name == name and spec.type in TYPES
        assert isinstance(spec.nullable, bool) and 0.0 <= spec.max_missing <= 1.0
        for bound in (spec.min, spec.max):
            assert bound is None or (type(bound) is float and math.isfinite(bound) and spec.numeric)
        assert spec.min is None or spec.max is None or spec.min <= spec.max
        assert spec.values is None or (spec.type == "category" and spec.values
                                       and all(isinstance(v, str) for v in spec.values))
        rule = c.drift_rule(spec)
        if rule is not None:
            kinds = stats.NUMERIC_METHODS if spec.numeric else stats.CATEGORICAL_METHODS
            assert rule[0] in kinds and math.isfinite(rule[1]) and rule[1] >= 0, rule
    assert isinstance(c.key, list) and all(k in c.columns for k in c.key)
    assert c.timestamp is None or c.columns[c.timestamp].type == "timestamp"
    assert type(c.min_rows) is int and c.min_rows >= 0
    assert c.max_rows is None or (type(c.max_rows) is int and c.max_rows >= c.min_rows)
    assert isinstance(c.allow_extra_columns, bool)
    assert c.reference_profile is None or isinstance(c.reference_profile, str)
    assert set(c.severity) == set(CHECK_FAMILIES) and set(c.severity.values()) <= set(SEVERITIES)
    # It round-trips through the YAML people keep in the repo.
    again = parse_contract(yaml.safe_load(contract_to_yaml(c)), WHERE)
    for attr in ("dataset", "version", "description", "columns", "key", "timestamp", "min_rows", "max_rows",
                 "allow_extra_columns", "reference_profile", "severity"):
        assert getattr(again, attr) == getattr(c, attr), attr
    assert {k: again.drift_rule(s) for k, s in again.columns.items()} == \
           {k: c.drift_rule(s) for k, s in c.columns.items()}


def assert_strict(doc: dict, c: Contract) -> None:
    """A returned contract came from a document whose fields had the documented types: nothing was coerced
    (``description: [1]`` made text, ``rows: 0`` read as no bounds, ``no:`` as a column named False)."""
    assert isinstance(doc.get("description"), (str, type(None))), doc.get("description")
    assert isinstance(doc.get("reference_profile"), (str, type(None))), doc.get("reference_profile")
    for name in ("rows", "drift", "severity"):
        assert isinstance(doc.get(name), (dict, type(None))), (name, doc.get(name))
    for bound in ("min", "max"):
        v = (doc.get("rows") or {}).get(bound)
        assert v is None or type(v) is int or (type(v) is float and v.is_integer()), (bound, v)
    rules = [r for r in (doc.get("drift") or {}).values() if isinstance(r, dict)]
    for name, column in doc["columns"].items():
        assert name is not None and not isinstance(name, bool), name
        assert all(type(v) in (str, int, float) for v in column.get("values") or []), column.get("values")
        rules += [column["drift"]] if isinstance(column.get("drift"), dict) else []
    assert all(isinstance(r.get("enabled", True), bool) for r in rules), rules


def test_fuzz_contract_base_is_valid():
    assert_well_formed(parse_contract(copy.deepcopy(BASE), WHERE))


@fuzz("contract parse")
@given(doc=contract_docs())
def test_fuzz_contract_parse(doc):
    try:
        contract = parse_contract(doc, WHERE)
    except ConfigError as exc:
        assert str(exc).startswith(f"{WHERE}:") and len(str(exc)) > len(WHERE) + 5, str(exc)
        OUTCOMES["contract parse"]["ConfigError"] += 1
    else:
        assert_strict(doc, contract)
        assert_well_formed(contract)
        OUTCOMES["contract parse"]["contract"] += 1
    CASES["contract parse"] += 1


SNIPPETS = ["!!timestamp x", "!!int x", "!!float x", "!!binary ZZZ", "!!python/object:os.system ls", "&a [1, 2]",
            "*a", "*undefined", "2020-13-45", "2020-02-30", "2020-01-01", "2020-01-01 10:00:00", ".inf", "-.inf",
            ".nan", "~", "yes", "no", "on", "0x1F", "0o17", "1_000", "1:30", "1e400", "9" * 400, "[", "{", "'open",
            '"\\x"', "!!set {a, b}", "!!omap [a: 1]", "!!pairs [a: 1]", "{a: 1, a: 2}", "\t", "@", "`", "%", "|",
            ">", "!custom x", "!!str 5", "!!bool x", "!!null x", "!!map [1]", "!!seq {a: 1}", "[" * 3000,
            "{a: " * 2000, "\x00", "\ufeff", "? [1]\n: 2", "---", "...", "- a", "a: b: c", "*a\n&a 1",
            "!!timestamp 2020-01-01T25:00:00", "!!float 1e999", "!!int 0b102", "0b101", "+.INF", "1e-400"]


@st.composite
def contract_texts(draw):
    """YAML text: the base contract's with lines changed, dropped, repeated or cut; dumps of odd documents;
    or no YAML at all (random text or bytes)."""
    kind = draw(st.sampled_from(["lines", "lines", "lines", "dump", "text", "bytes"]))
    if kind == "dump":
        return yaml.safe_dump(draw(contract_docs()), allow_unicode=draw(st.booleans()), sort_keys=False).encode()
    if kind == "text":
        return draw(st.text(max_size=200)).encode("utf-8", "surrogatepass")
    if kind == "bytes":
        return draw(st.one_of(st.binary(max_size=200), st.just(b"dataset: \xff\xfe\n"),
                              st.just("dataset: d".encode("utf-16"))))
    lines = yaml.safe_dump(BASE, sort_keys=False).splitlines()
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        change = draw(st.sampled_from(["value", "value", "drop", "repeat", "insert", "indent", "cut"]))
        if change == "value":
            head = lines[i].split(":")[0] if ":" in lines[i] else lines[i]
            lines[i] = f"{head}: {draw(st.one_of(st.sampled_from(SNIPPETS), st.text(max_size=10)))}"
        elif change == "drop":
            lines.pop(i)
        elif change == "repeat":
            lines.insert(i, lines[i])
        elif change == "insert":
            indent = " " * draw(st.sampled_from([0, 2, 4, 6, 3]))
            lines.insert(i, indent + draw(st.one_of(st.sampled_from(SNIPPETS), st.text(max_size=20))))
        elif change == "indent":
            lines[i] = draw(st.sampled_from(["\t", " ", "   "])) + lines[i]
        else:
            lines[i] = lines[i][:draw(st.integers(0, len(lines[i])))]
        if not lines:
            lines = [""]
    return "\n".join(lines).encode("utf-8", "surrogatepass")


@pytest.fixture(scope="module")
def contract_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz-contracts")


@fuzz("contract load")
@given(text=contract_texts())
def test_fuzz_contract_load(contract_dir, text):
    path = contract_dir / "fuzz.yaml"
    path.write_bytes(text)
    try:
        contract = load_contract(path)
    except ConfigError as exc:
        assert str(path) in str(exc), str(exc)
        OUTCOMES["contract load"]["ConfigError"] += 1
    else:
        assert contract.path == path
        assert_well_formed(contract)
        OUTCOMES["contract load"]["contract"] += 1
    CASES["contract load"] += 1


# ==========================================================================================
# regressions: the exact inputs fuzzing found, each was a 5xx, a leaked exception or a wrong answer
# ==========================================================================================

def _good_row(top: Topology) -> dict:
    return {n: ("RENT" if k == "string" else 1.0) for n, k in top.columns}


def _v2_body(top: Topology, **changes) -> dict:
    inputs = [{"name": n, "datatype": "BYTES" if k == "string" else "FP64", "shape": [1],
               "data": [_good_row(top)[n]]} | changes.get(n, {}) for n, k in top.columns]
    return {"inputs": inputs + changes.get("extra", [])}


def _ids_v2(top: Topology, data, shape=None, repeat=1) -> dict:
    datatype = "INT64" if top.integer else "BYTES"
    return {"inputs": [{"name": top.entity, "datatype": datatype, "shape": shape or [len(data)], "data": data}] * repeat}


CE_BINARY = {"ce-specversion": "1.0", "ce-id": "1.0", "ce-source": "1.0", "ce-type": "1.0", "ce-time": "1.0",
             "ce-contenttype": "1.0"}

# (id, server, protocol, headers, body (text, or a callable of the topology giving an object), status, regex)
FOUND = [
    # "application/json; charset=utf-8" passed the guard but KServe compared the whole header: 415 "must be a
    # JSON object" (predictor), 400 "needs instances" (transformer) for a valid request.
    ("charset-utf-8-predictor", "predictor", "v1", {"content-type": "application/json; charset=utf-8"},
     lambda t: {"instances": [_good_row(t)]}, 200, None),
    ("upper-case-media-type-transformer", "transformer", "v1", {"content-type": "Application/JSON"},
     lambda t: {"instances": [{t.entity: t.known[0]}]}, 200, None),
    # V2 bodies are parsed by the json module: NaN, Infinity, 1e400 and integers beyond a float got through
    # (scored as if real; a huge integer was a 500 OverflowError).
    ("v2-nan-token", "predictor", "v2", JSON, lambda t: dumps(_v2_body(t, income={"data": [math.nan]})), 400,
     r"row 0: income must be a finite number or null, got float nan"),
    ("v2-infinity-token", "predictor", "v2", JSON, lambda t: dumps(_v2_body(t, age={"data": [-math.inf]})), 400,
     r"row 0: age must be a finite number or null, got float -inf"),
    ("v2-1e400", "predictor", "v2", JSON,
     lambda t: dumps(_v2_body(t, income={"data": [0.0]})).replace(b"[0.0]", b"[1e400]", 1), 400,
     r"income must be a finite number or null, got float inf"),
    ("v2-integer-beyond-float", "predictor", "v2", JSON, lambda t: dumps(_v2_body(t, income={"data": [10**400]})),
     400, r"income must be a finite number or null, got int 1000"),
    # A V2 body that is not UTF-8 or nests too deeply: FastAPI's {"detail": "There was an error parsing the body"}.
    ("v2-not-utf-8", "predictor", "v2", JSON, b"\x80", 400,
     r"the request body is not valid JSON: UnicodeDecodeError: 'utf-8' codec can't decode byte 0x80"),
    ("v2-nested-too-deeply", "transformer", "v2", JSON, b"[" * 5000, 400,
     r"the request body is not valid JSON: RecursionError"),
    # An unpaired surrogate in a V2 tensor name went into the error message, which orjson cannot write: 500.
    ("v2-surrogate-in-input-name", "predictor", "v2", JSON,
     lambda t: dumps(_v2_body(t, extra=[{"name": "\ud800", "datatype": "FP64", "shape": [1], "data": [1.0]}])),
     400, r"unknown inputs: \\ud800"),
    # ... and in a V2 request's id, which the answer repeats: 500.
    ("v2-surrogate-in-request-id", "predictor", "v2", JSON, lambda t: dumps(_v2_body(t) | {"id": "\ud800"}), 400,
     r"the request's \"id\" must be valid Unicode text"),
    # ... and in a customer id the feature store could not encode: 500 UnicodeEncodeError.
    ("v2-surrogate-in-fp16-input-name", "predictor", "v2", JSON,  # KServe's own refusal of FP16 data
     lambda t: dumps({"inputs": [{"name": "\ud800", "datatype": "FP16", "shape": [1], "data": [1.0]}]}), 400,
     r"Sending FP16 data via JSON is not supported.* for input \\ud800"),
    ("v2-surrogate-customer-id", "transformer", "v2", JSON, lambda t: dumps(_ids_v2(t, ["\ud800"])), 400,
     r"customer_id must be valid Unicode text \(rows \[0\] hold unpaired surrogates\)"),
    # A [n, 1] tensor of nested ids was refused as "must be a non-empty string" (the predictor reads it).
    ("v2-ids-shape-n-1-nested", "transformer", "v2", JSON, lambda t: dumps(_ids_v2(t, [[t.known[0]]], [1, 1])), 200,
     None),
    # Two customer_id tensors were answered with the second one's predictions; the predictor refuses repeats.
    ("v2-repeated-customer-id", "transformer", "v2", JSON, lambda t: dumps(_ids_v2(t, t.known[:1], repeat=2)), 400,
     r"needs exactly one input, 'customer_id' .*got \['customer_id', 'customer_id'\]"),
    # A binary CloudEvent with ce-contenttype: KServe decoded its JSON twice, a 500 AttributeError.
    ("cloudevent-ce-contenttype-transformer", "transformer", "v1", JSON | CE_BINARY,
     lambda t: {"instances": [{t.entity: t.known[0]}]}, 400, r"binary CloudEvent with a ce-contenttype header"),
    ("cloudevent-ce-contenttype-predictor", "predictor", "v1", JSON | CE_BINARY,
     lambda t: {"instances": [_good_row(t)]}, 400, r"leave ce-contenttype out"),
]


@pytest.mark.platform
@pytest.mark.parametrize("server, protocol, headers, body, status, message",
                         [pytest.param(*case[1:], id=case[0]) for case in FOUND])
def test_fuzzing_finding_is_answered_as_documented(topology, server, protocol, headers, body, status, message):
    body = body(topology) if callable(body) else body
    content = body if isinstance(body, bytes) else dumps(body)
    resp = topology.client.post(topology.url(server, protocol), content=content, headers=headers)
    assert resp.status_code == status, resp.text[:500]
    if status == 200:
        _check_answer(server, protocol, resp, None, topology, None)
    else:
        assert re.search(message, error_of(resp)), error_of(resp)
    assert expectation(server, protocol, headers, content, topology).status == status  # the oracle agrees


WHOLE = r"subscriber_id must be a whole number \(a 64-bit integer id\) \(rows \[0\]\)"
OUTSIDE_INT64 = r"is INT64 but rows \[0\] hold values outside \[-9223372036854775808, 9223372036854775807\]"
# Integer ids at the edges, on the churn project's transformer: (id, protocol, body of the topology, status, regex)
INTEGER_EDGES = [
    ("v2-int64-min-unknown", "v2", lambda t: _ids_v2(t, [INT64[0]]), 422,
     r"no online features for subscriber_id -9223372036854775808: unknown subscriber"),
    ("v2-int64-max-unknown", "v2", lambda t: _ids_v2(t, [INT64[1]]), 422,
     r"no online features for subscriber_id 9223372036854775807"),
    ("v2-beyond-int64", "v2", lambda t: _ids_v2(t, [INT64[1] + 1]), 400, OUTSIDE_INT64),
    ("v2-below-int64", "v2", lambda t: _ids_v2(t, [INT64[0] - 1]), 400, OUTSIDE_INT64),
    ("v2-whole-float", "v2", lambda t: _ids_v2(t, [float(t.known[0])]), 400, WHOLE),
    ("v2-bool", "v2", lambda t: _ids_v2(t, [True]), 400, WHOLE),
    ("v2-id-as-text", "v2", lambda t: _ids_v2(t, [str(t.known[0])]), 400, WHOLE),
    ("v2-int32-tensor", "v2", lambda t: {"inputs": [_ids_v2(t, t.known[:2])["inputs"][0] | {"datatype": "INT32"}]},
     200, None),
    ("v2-nested-n-1", "v2", lambda t: _ids_v2(t, [[t.known[0]]], [1, 1]), 200, None),
    ("v1-whole-float", "v1", lambda t: {"instances": [{t.entity: float(t.known[0])}]}, 400, WHOLE),
    ("v1-beyond-int64", "v1", lambda t: {"instances": [{t.entity: INT64[1] + 1}]}, 400, WHOLE),
    ("v1-negative-unknown", "v1", lambda t: {"instances": [{t.entity: -t.known[0]}]}, 422,
     r"no online features for subscriber_id -\d+"),
]


@pytest.mark.platform
@pytest.mark.parametrize("protocol, body, status, message", [pytest.param(*c[1:], id=c[0]) for c in INTEGER_EDGES])
def test_integer_ids_at_the_edges_are_answered_as_documented(churn_topology, protocol, body, status, message):
    content = dumps(body(churn_topology))
    resp = churn_topology.client.post(churn_topology.url("transformer", protocol), content=content, headers=JSON)
    assert resp.status_code == status, resp.text[:500]
    if status == 200:
        _check_answer("transformer", protocol, resp, None, churn_topology, None)
    else:
        assert re.search(message, error_of(resp)), error_of(resp)
    assert expectation("transformer", protocol, JSON, content, churn_topology).status == status  # the oracle agrees


@pytest.mark.platform
def test_framework_refusals_say_what_in_the_same_form(topology):
    """No such route, wrong method: FastAPI's answers, in the servers' {"error": ...} form."""
    c = topology.client
    for base in (topology.predictor, topology.transformer):
        missing = c.post(f"{base}/v1/models/a%2Fb:predict", json={})
        assert missing.status_code == 404 and error_of(missing) == "Not Found"
        wrong_method = c.get(f"{base}/v2/models/{topology.model}/infer")
        assert wrong_method.status_code == 405 and error_of(wrong_method) == "Method Not Allowed"
        assert "POST" in wrong_method.headers["allow"]


def _contract(change):
    doc = copy.deepcopy(BASE)
    change(doc)
    return doc


CONTRACT_FOUND = [  # (id, document, the ConfigError's message after "contracts/fuzz.yaml: ")
    ("mixed-type-unknown-fields", _contract(lambda d: d.update({1: "x", "foo": 2})),  # was TypeError (sorted)
     r"unknown field\(s\) \['1', 'foo'\]"),
    ("mixed-type-unknown-column-fields", _contract(lambda d: d["columns"]["x"].update({None: 1, "foo": 2})),
     r"columns.x: unknown field\(s\) \['None', 'foo'\]"),
    ("list-in-key", _contract(lambda d: d.update(key=[[]])),  # was TypeError (unhashable)
     r"key: must list declared columns, got \[\[\]\]"),
    ("list-as-timestamp", _contract(lambda d: d.update(timestamp=[])),  # was TypeError (unhashable)
     r"timestamp: \[\] must be a declared"),
    ("infinite-row-count", _contract(lambda d: d.update(rows={"min": math.inf})),  # was OverflowError
     r"rows.min: expected a finite number, got inf"),
    ("fractional-row-count", _contract(lambda d: d.update(rows={"min": 1, "max": 1.5})),  # was read as 1
     r"rows.max: expected a whole number, got 1.5"),
    ("integer-beyond-float", _contract(lambda d: d["columns"]["x"].update(max=10**400)),  # was OverflowError
     r"columns.x.max: expected a number, got 1000.*\.\.\. \(too large\)"),
    ("infinite-bound-on-integer-column", _contract(lambda d: d["columns"]["n"].update(min=-math.inf)),
     r"columns.n.min: expected a finite number, got -inf"),  # loaded, then contract_to_yaml: OverflowError
    ("infinite-threshold", _contract(lambda d: d["columns"]["x"].update(drift={"threshold": math.inf})),
     r"columns.x.drift.threshold: expected a finite number"),
    ("rows-as-a-list", _contract(lambda d: d.update(rows=[])),  # was read as no bounds
     r"rows: expected a mapping with 'min' and/or 'max', got \[\]"),
    ("description-as-a-list", _contract(lambda d: d.update(description=[1])),  # was the text "[1]"
     r"description: expected text, got \[1\]"),
    ("reference-profile-as-a-number", _contract(lambda d: d.update(reference_profile=5)),  # was the file "5"
     r"reference_profile: expected a file name, got 5"),
    ("yes-no-as-category-values", _contract(lambda d: d["columns"]["c"].update(values=[True, False])),
     r"columns.c.values: each value must be text or a number \(quote yes, no"),  # was ["True", "False"]
    ("column-named-no", _contract(lambda d: d["columns"].update({False: {"type": "float"}})),  # was "False"
     r"columns: column name False is not text; quote it"),
    ("drift-enabled-as-text", _contract(lambda d: d["columns"]["x"].update(drift={"enabled": "no"})),  # ignored
     r"columns.x.drift.enabled: expected true or false, got 'no'"),
]


@pytest.mark.parametrize("doc, message", [pytest.param(*case[1:], id=case[0]) for case in CONTRACT_FOUND])
def test_fuzzing_finding_in_a_contract_is_a_config_error(doc, message):
    with pytest.raises(ConfigError) as info:
        parse_contract(doc, WHERE)
    assert str(info.value).startswith(f"{WHERE}: ") and re.search(message, str(info.value)), str(info.value)


@pytest.mark.parametrize("change", [
    pytest.param(lambda d: d["columns"]["n"].update(min=0.5), id="fractional-bound-of-integer-column"),  # wrote 0
    pytest.param(lambda d: d.update(dataset="\x85"), id="next-line-in-text"),  # read back as " "
    pytest.param(lambda d: d.update(description="a\u2028b"), id="line-separator-in-text"),
])
def test_fuzzing_finding_survives_the_yaml_round_trip(change):
    assert_well_formed(parse_contract(_contract(change), WHERE))


@pytest.mark.parametrize("text, message", [
    pytest.param(b"dataset: \xff\n", r"is not UTF-8 text: byte 9 is 0xff", id="not-utf-8"),  # UnicodeDecodeError
    pytest.param(b"dataset: !!float x\n", r"not valid YAML: a malformed value \(could not convert", id="float-tag"),
    pytest.param(b"dataset: !!int x\n", r"not valid YAML: a malformed value", id="int-tag"),  # ValueError
    pytest.param(b"dataset: !!timestamp x\n", r"not valid YAML: a malformed value",  # AttributeError
                 id="timestamp-tag"),
    pytest.param(b"dataset: 2020-13-45\n", r"a malformed value \(month must be in 1..12\)",  # ValueError
                 id="bad-date"),
    pytest.param(b"dataset: " + b"[" * 3000 + b"\n", r"not valid YAML: nested too deeply",  # RecursionError
                 id="deep"),
    pytest.param(b"dataset: " + b"9" * 5000 + b"\n", r"a malformed value \(Exceeds the limit", id="5000-digits"),
])
def test_fuzzing_finding_in_a_contract_file_is_a_config_error(contract_dir, text, message):
    path = contract_dir / "found.yaml"
    path.write_bytes(text)
    with pytest.raises(ConfigError) as info:
        load_contract(path)
    assert str(path) in str(info.value) and re.search(message, str(info.value)), str(info.value)


# ==========================================================================================
# after the fuzzing: every server still serves; the case count
# ==========================================================================================

def _raw_http(url: str, request: bytes, half_close: bool = False) -> bytes:
    """Send raw bytes to a server; its answer (empty when it closes without one), within 10 s."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(request)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
                if b"\r\n\r\n" in answer and not half_close:
                    break
        except TimeoutError:
            pass
    return answer


@pytest.mark.platform
@pytest.mark.parametrize("server", ["predictor", "transformer"])
def test_broken_http_is_refused_or_dropped_and_the_server_keeps_serving(topology, server):
    url = topology.url(server, "v1")
    path = urlsplit(url).path.encode()
    head = b"POST " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    for bad_length in (b"abc", b"-1", b"1 2"):
        answer = _raw_http(url, head + b"Content-Length: " + bad_length + b"\r\n\r\n{}")
        status_line, _, rest = answer.partition(b"\r\n")
        assert status_line.startswith(b"HTTP/1.1 4"), answer[:300]
        assert rest.partition(b"\r\n\r\n")[2].strip(), answer[:300]  # says why
    # A body shorter than its Content-Length, then the client stops sending: no answer is owed, nothing hangs.
    answer = _raw_http(url, head + b"Content-Length: 100\r\n\r\n{\"instances\"", half_close=True)
    assert answer == b"" or answer.startswith(b"HTTP/1.1 4"), answer[:300]
    assert_still_serving(topology)


def assert_still_serving(top: Topology) -> None:
    c = top.client
    for base in (top.predictor, top.transformer):
        assert c.get(f"{base}/v2/health/ready").status_code == 200
        assert c.get(f"{base}/v2/models/{top.model}/ready").status_code == 200
    good = {n: (1.0 if k != "string" else None) for n, k in top.columns}
    checks = [("predictor", "v1", dumps({"instances": [good, good]}), 2),
              ("predictor", "v2", dumps({"inputs": [{"name": n, "datatype": "BYTES" if k == "string" else "FP64",
                                                     "shape": [1], "data": [good[n]]} for n, k in top.columns]}), 1),
              ("transformer", "v1", dumps({"instances": [{top.entity: c} for c in top.known[:3]]}), 3),
              ("transformer", "v2", dumps({"inputs": [{"name": top.entity,
                                                       "datatype": "INT64" if top.integer else "BYTES", "shape": [2],
                                                       "data": top.known[:2]}]}), 2)]
    for server, protocol, body, rows in checks:
        resp = check(server, protocol, JSON, body, top)
        assert resp.status_code == 200 and expectation(server, protocol, JSON, body, top).rows == rows


@pytest.mark.platform
def test_every_server_still_answers_after_the_fuzzing(any_topology):
    assert_still_serving(any_topology)
    from mlops.platform.processes import http_ok

    assert all(http_ok(url + "/v2/health/live") or http_ok(url + "/splitter/health")
               for url in any_topology.urls.values())


def test_fuzz_case_count(capsys):
    """The executed cases per target and in total (for bench/RESULTS.md); at least 1,000 when all ran."""
    total = sum(CASES.values())
    with capsys.disabled():
        print(f"\nfuzz cases executed: {dict(sorted(CASES.items()))}, total {total}")
        for target, statuses in sorted(OUTCOMES.items()):
            print(f"  {target}: answers by status {dict(sorted(statuses.items()))}")
    for target, floor in MIN_CASES.items():
        if CASES[target]:
            assert CASES[target] >= floor, f"{target}: {CASES[target]} cases, expected {floor}"
    if set(CASES) != set(MIN_CASES):
        pytest.skip(f"only {sorted(CASES)} ran; the total applies to a run of the whole module")
    assert total >= MIN_TOTAL
