"""What conformant Open Inference Protocol (V2) clients send, read strictly; what they ask back, answered.

The binary tensor data extension: a request body is a JSON header of
``Inference-Header-Content-Length`` bytes, then the raw bytes of each input
whose ``parameters`` carry ``binary_data_size``, in input order (fixed-size
types little-endian, row-major; BYTES as 4-byte little-endian lengths, each
followed by its bytes). tritonclient sends inputs that way by default, and
asks for outputs that way with ``binary_data_output`` (all) or an output's
``binary_data``. A binary tensor cannot hold a null: a NaN in a binary FP16,
FP32 or FP64 tensor is a missing value, as null is in JSON.

KServe's own decoder slices the body as the header says: a header that lies
about its length, a size that overruns the body, or raw bytes that do not
fill the declared shape end in 500s or in tensors of another shape. Here every
such request is a 400 that says which number is wrong, and nothing is left
over or missing: the sizes must account for the body to the byte.
"""

from __future__ import annotations

import math
import struct
import uuid

import numpy as np
import orjson

from mlops.errors import BadRequest
from mlops.serving.http_server import import_kserve
from mlops.serving.request_schema import is_text

kserve = import_kserve()
from kserve.protocol.infer_type import InferInput, InferOutput, InferRequest, InferResponse, RequestedOutput  # noqa: E402

HEADER_LENGTH = "inference-header-content-length"
FIXED_SIZE = {"BOOL": np.dtype("?"), "UINT8": np.dtype("<u1"), "UINT16": np.dtype("<u2"), "UINT32": np.dtype("<u4"),
              "UINT64": np.dtype("<u8"), "INT8": np.dtype("<i1"), "INT16": np.dtype("<i2"), "INT32": np.dtype("<i4"),
              "INT64": np.dtype("<i8"), "FP16": np.dtype("<f2"), "FP32": np.dtype("<f4"), "FP64": np.dtype("<f8")}
DATATYPES = frozenset(FIXED_SIZE) | {"BYTES"}
_BYTES_LENGTH = struct.Struct("<I")
# What the classifiers' servers (predictor and transformer alike) answer: each row's probability of the
# positive class and its class at the decision threshold.
CLASSIFIER_OUTPUTS = {"probability": "FP64", "class": "INT64"}


def decode_binary_request(body: bytes, header_length: str | None, model_name: str) -> InferRequest:
    """The V2 request of a body that uses the binary tensor data extension; a 400 for any inconsistency."""
    if header_length is None or not (header_length.isascii() and header_length.isdigit()) \
            or not 0 < int(header_length) <= len(body):  # isdigit() alone takes "²", which int() refuses
        raise BadRequest(f"Inference-Header-Content-Length is {header_length!r}: it must be the byte length of the "
                         f"JSON header at the start of the body (1 to {len(body)} for this body)")
    json_length = int(header_length)
    try:
        header = orjson.loads(body[:json_length])
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the first {json_length} bytes of the body (Inference-Header-Content-Length) are not a "
                         f"JSON object: {exc}") from None
    if not isinstance(header, dict):
        raise BadRequest(f"the JSON header of a binary request must be an object, got {type(header).__name__}")
    raw_inputs = header.get("inputs")
    if not isinstance(raw_inputs, list):
        raise BadRequest("the JSON header of a binary request needs \"inputs\": a list of tensors")
    offset, inputs = json_length, []
    for i, tensor in enumerate(raw_inputs):
        name, datatype, shape, parameters = _tensor_header(tensor, i)
        size = parameters.get("binary_data_size")
        if "data" in tensor:
            if size is not None:
                raise BadRequest(f"input {name!r} has both \"data\" and a binary_data_size: send one or the other")
            inputs.append(InferInput(name, shape, datatype, data=tensor["data"], parameters=parameters))
            continue
        if type(size) is not int or size < 0:
            raise BadRequest(f"input {name!r} has no \"data\" and no binary_data_size (a byte count) in its "
                             f"parameters; got binary_data_size {size!r}")
        if offset + size > len(body):
            raise BadRequest(f"input {name!r} declares binary_data_size {size} but only {len(body) - offset} bytes "
                             f"of the body are left after byte {offset}")
        values = _decode_raw(body[offset:offset + size], name, datatype, shape)
        offset += size
        inputs.append(InferInput(name, shape, datatype, data=values, parameters=_without_size(parameters)))
    if offset != len(body):
        raise BadRequest(f"the body has {len(body) - offset} bytes after the last binary input (JSON header of "
                         f"{json_length} bytes, binary_data_size adding up to {offset - json_length}): "
                         "Inference-Header-Content-Length or a binary_data_size is wrong")
    request_id, parameters = header.get("id"), header.get("parameters")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequest(f"the request's \"id\" must be a string, got {type(request_id).__name__}")
    if parameters is not None and not isinstance(parameters, dict):
        raise BadRequest(f"the request's \"parameters\" must be an object, got {type(parameters).__name__}")
    return InferRequest(model_name=model_name, infer_inputs=inputs, request_id=request_id, parameters=parameters,
                        request_outputs=_requested_outputs(header.get("outputs")))


def _tensor_header(tensor: object, i: int) -> tuple[str, str, list[int], dict]:
    if not isinstance(tensor, dict):
        raise BadRequest(f"inputs[{i}] must be an object with name, datatype and shape")
    name, datatype, shape = tensor.get("name"), tensor.get("datatype"), tensor.get("shape")
    parameters = tensor.get("parameters") or {}
    if not isinstance(name, str):
        raise BadRequest(f"inputs[{i}] needs a \"name\" (a string)")
    if datatype not in DATATYPES:
        raise BadRequest(f"input {name!r} has datatype {datatype!r}; the protocol's are {', '.join(sorted(DATATYPES))}")
    if not isinstance(shape, list) or any(type(d) is not int or d < 0 for d in shape):
        raise BadRequest(f"input {name!r} needs a \"shape\": a list of non-negative integers, got {shape!r}")
    if not isinstance(parameters, dict):
        raise BadRequest(f"input {name!r} has \"parameters\" that are not an object")
    return name, datatype, shape, parameters


def _decode_raw(raw: bytes, name: str, datatype: str, shape: list[int]) -> np.ndarray:
    count = math.prod(shape)
    if datatype == "BYTES":
        values, offset = [], 0
        while offset < len(raw):
            if offset + 4 > len(raw):
                raise BadRequest(f"input {name!r}: the binary BYTES data ends inside an element's 4-byte length")
            (length,) = _BYTES_LENGTH.unpack_from(raw, offset)
            offset += 4
            if offset + length > len(raw):
                raise BadRequest(f"input {name!r}: BYTES element {len(values)} declares {length} bytes but only "
                                 f"{len(raw) - offset} are left")
            try:
                values.append(raw[offset:offset + length].decode("utf-8"))
            except UnicodeDecodeError:
                raise BadRequest(f"input {name!r}: BYTES element {len(values)} is not UTF-8 text") from None
            offset += length
        if len(values) != count:
            raise BadRequest(f"input {name!r} declares shape {shape} ({count} elements) but its binary data holds "
                             f"{len(values)}")
        return np.array(values, dtype=object).reshape(shape)
    dtype = FIXED_SIZE[datatype]
    if len(raw) != count * dtype.itemsize:
        raise BadRequest(f"input {name!r} declares shape {shape} of {datatype} ({count * dtype.itemsize} bytes) but "
                         f"its binary_data_size is {len(raw)}")
    values = np.frombuffer(raw, dtype=dtype).reshape(shape)
    if dtype.kind == "f" and np.isnan(values).any():
        # Binary tensors have no null: NaN is a missing value there, as null is in JSON (and as the
        # model itself reads it). Infinities stay what they are, and are refused as in JSON.
        values = values.astype(object)
        values[np.isnan(values.astype(dtype))] = None
    return values


def _without_size(parameters: dict) -> dict:
    return {k: v for k, v in parameters.items() if k != "binary_data_size"}


def _requested_outputs(outputs: object) -> list[RequestedOutput] | None:
    if outputs is None:
        return None
    if not isinstance(outputs, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str)
                                                and isinstance(o.get("parameters") or {}, dict) for o in outputs):
        raise BadRequest("the request's \"outputs\" must be a list of objects with a \"name\"")
    return [RequestedOutput(name=o["name"], parameters=o.get("parameters") or {}) for o in outputs]


# -- answers --------------------------------------------------------------------------------

def request_id(payload: InferRequest) -> str | None:
    """The caller's request id, which the answer must repeat; checked so that it can be repeated."""
    if payload.id is not None and not is_text(payload.id):
        raise BadRequest("the request's \"id\" must be valid Unicode text (it holds an unpaired surrogate)")
    return payload.id


def requested(payload: InferRequest, names) -> tuple[bool, list[RequestedOutput] | None]:
    """Whether the answer is binary, and the outputs asked for (None: all), checked against ``names``."""
    binary = (payload.parameters or {}).get("binary_data_output", False)
    if not isinstance(binary, bool):
        raise BadRequest("parameter binary_data_output must be true or false")
    wanted = payload.request_outputs
    if not wanted:
        return binary, None
    unknown = sorted({o.name for o in wanted} - set(names))
    if unknown:
        raise BadRequest(f"unknown outputs requested: {', '.join(unknown)}; this model answers {', '.join(names)}")
    for o in wanted:
        if not isinstance(o.parameters.get("binary_data", binary), bool):
            raise BadRequest(f"output {o.name!r}: parameter binary_data must be true or false")
    # KServe reads each named output's own binary_data, which defaults to false: make it the request's.
    return binary, [RequestedOutput(o.name, {**o.parameters, "binary_data": o.parameters.get("binary_data", binary)})
                    for o in wanted]


def answer(payload: InferRequest, model_name: str, version: str, outputs: dict[str, np.ndarray],
           response_id: str | None = None, datatypes: dict[str, str] = CLASSIFIER_OUTPUTS) -> InferResponse:
    """The V2 answer: the outputs the caller asked for (all when none named), in JSON or binary as asked.

    ``outputs`` maps each output's name to its values (of the datatype ``datatypes`` gives it);
    the answer's id is the request's, else ``response_id``, else a new one.
    """
    binary, wanted = requested(payload, outputs)
    tensors = [InferOutput(name, [len(values)], datatypes[name], data=values.tolist())
               for name, values in outputs.items()]
    return InferResponse(response_id=request_id(payload) or response_id or str(uuid.uuid4()), model_name=model_name,
                         model_version=version, infer_outputs=tensors, use_binary_outputs=binary,
                         requested_outputs=wanted)
