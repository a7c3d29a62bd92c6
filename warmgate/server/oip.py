"""The Open Inference Protocol (KServe v2) infer body, JSON and binary.

JSON tensors are ``{"name", "shape", "datatype", "data"}``. The binary tensor data extension (what
NVIDIA's ``tritonclient.http`` sends by default) puts the JSON header first, its length in the
``Inference-Header-Content-Length`` HTTP header, and the raw tensor bytes after it, in input
order: an input with ``"parameters": {"binary_data_size": n}`` takes the next ``n`` bytes (numbers
little-endian, row-major; ``BYTES`` elements as a 4-byte little-endian length and the bytes).
Responses do the same for outputs asked for with ``"parameters": {"binary_data": true}`` or,
for all outputs, the request parameter ``"binary_data_output": true``.

Every client mistake raises :class:`BadRequest` naming the tensor and what was wrong.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from warmgate.errors import BadRequest
from warmgate.models.base import TensorSpec
from warmgate.server.json_body import dumps, loads

HEADER_LENGTH = "Inference-Header-Content-Length"

# Open Inference Protocol datatypes ⇄ numpy dtype names.
OIP_TO_NUMPY = {
    "BOOL": "bool",
    "UINT8": "uint8",
    "UINT16": "uint16",
    "UINT32": "uint32",
    "UINT64": "uint64",
    "INT8": "int8",
    "INT16": "int16",
    "INT32": "int32",
    "INT64": "int64",
    "FP16": "float16",
    "FP32": "float32",
    "FP64": "float64",
    "BYTES": "object",
}
NUMPY_TO_OIP = {v: k for k, v in OIP_TO_NUMPY.items()}


@dataclass(frozen=True)
class ReplyOptions:
    """What the client asked of the response: which outputs (None: all) and which go binary."""

    request_id: str | None = None
    outputs: tuple[str, ...] | None = None
    binary: frozenset[str] = frozenset()
    binary_all: bool = False

    def is_binary(self, name: str) -> bool:
        return self.binary_all or name in self.binary


@dataclass(frozen=True)
class OipRequest:
    values: dict[str, Any]  # numpy arrays; BYTES tensors as lists of str
    reply: ReplyOptions


@dataclass(frozen=True)
class OipResponse:
    body: bytes
    header_length: int | None  # set when binary tensors follow the JSON header


def parse_header_length(value: str | None, body_size: int) -> int | None:
    """The ``Inference-Header-Content-Length`` header as a length inside the body, or None."""
    if value is None:
        return None
    try:
        length = int(value)
    except ValueError:
        raise BadRequest(f"{HEADER_LENGTH} must be an integer, got {value!r}") from None
    if not 0 < length <= body_size:
        raise BadRequest(f"{HEADER_LENGTH} is {length} but the body has {body_size} bytes")
    return length


def decode_request(
    body: bytes,
    header_length: str | None,
    specs: Sequence[TensorSpec] | None,
    output_names: Sequence[str] = (),
) -> OipRequest:
    """An infer request. With ``specs`` the datatypes are checked against the model's signature;
    ``BYTES`` tensors come back as lists of strings. Requested outputs must be among
    ``output_names``."""
    split = parse_header_length(header_length, len(body))
    try:
        doc = loads(body if split is None else body[:split])
    except BadRequest as exc:
        if split is None:  # JSON followed by binary tensors, sent without the header?
            raise BadRequest(f"{exc.message}; binary tensor data needs the {HEADER_LENGTH} header") from exc
        raise
    binary = _Binary(None if split is None else memoryview(body)[split:])
    if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), list) or not doc["inputs"]:
        raise BadRequest('OIP body must be {"inputs": [{"name", "shape", "datatype", "data"}, ...]}')
    by_name = {s.name: s for s in specs or ()}
    values: dict[str, Any] = {}
    for i, tensor in enumerate(doc["inputs"]):
        if not isinstance(tensor, dict):
            raise BadRequest(f"inputs[{i}] must be an object")
        name, value = _input(i, tensor, binary, by_name)
        if name in values:
            raise BadRequest(f"inputs[{i}]: input {name!r} is given twice")
        values[name] = value
    binary.finish()
    reply = _reply_options(doc)
    unknown = [n for n in reply.outputs or () if n not in output_names]
    if unknown:
        raise BadRequest(f"unknown output(s) {unknown}; the model's outputs are {list(output_names)}")
    return OipRequest(values, reply)


def _input(
    i: int, tensor: Mapping[str, Any], binary: _Binary, specs: Mapping[str, TensorSpec]
) -> tuple[str, Any]:
    missing = [k for k in ("name", "shape", "datatype") if k not in tensor]
    if missing:
        raise BadRequest(f"inputs[{i}] is missing {missing}")
    name, shape, datatype = tensor["name"], tensor["shape"], tensor["datatype"]
    where = f"inputs[{i}] ({name})"
    if datatype not in OIP_TO_NUMPY:
        raise BadRequest(f"{where}: unknown datatype {datatype!r}; use one of {', '.join(OIP_TO_NUMPY)}")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise BadRequest(f"{where}: shape must be a list of non-negative integers")
    spec = specs.get(name)
    if spec is not None and datatype != "BYTES" and OIP_TO_NUMPY[datatype] != spec.dtype:
        raise BadRequest(
            f"{where}: datatype {datatype} does not match the model's "
            f"{NUMPY_TO_OIP.get(spec.dtype, spec.dtype)}"
        )
    count = int(np.prod(shape))
    params = tensor.get("parameters") or {}
    if not isinstance(params, dict):
        raise BadRequest(f"{where}: parameters must be an object")
    if "binary_data_size" in params:
        if "data" in tensor:
            raise BadRequest(f"{where}: give either data or parameters.binary_data_size, not both")
        raw = binary.take(where, params["binary_data_size"])
        if datatype == "BYTES":
            return name, _strings(where, _unpack_bytes(where, raw), count)
        return name, _numbers(where, raw, datatype, shape)
    if "data" not in tensor:
        raise BadRequest(f"{where} has neither data nor parameters.binary_data_size")
    if datatype == "BYTES":
        flat = np.asarray(tensor["data"], dtype=object).reshape(-1)
        return name, _strings(where, flat.tolist(), count)
    try:
        array = np.asarray(tensor["data"], dtype=OIP_TO_NUMPY[datatype])
    except (ValueError, TypeError, OverflowError) as exc:
        raise BadRequest(f"{where}: data is not an array of {datatype}: {exc}") from exc
    if array.size != count:
        raise BadRequest(f"{where}: {array.size} values do not fill shape {shape}")
    return name, array.reshape(shape)


def _strings(where: str, items: Sequence[Any], count: int) -> list[str]:
    if len(items) != count:
        raise BadRequest(f"{where}: {len(items)} values do not fill the shape ({count} elements)")
    out = []
    for j, value in enumerate(items):
        if isinstance(value, bytes | bytearray | memoryview):
            try:
                value = bytes(value).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise BadRequest(f"{where}: element {j} is not valid UTF-8: {exc}") from exc
        if not isinstance(value, str):
            raise BadRequest(f"{where}: element {j} must be a string, got {type(value).__name__}")
        out.append(value)
    return out


def _numbers(where: str, raw: memoryview, datatype: str, shape: list[int]) -> np.ndarray:
    dtype = np.dtype(OIP_TO_NUMPY[datatype]).newbyteorder("<")
    want = int(np.prod(shape)) * dtype.itemsize
    if len(raw) != want:
        raise BadRequest(
            f"{where}: binary_data_size is {len(raw)} bytes but shape {shape} of {datatype} needs {want}"
        )
    return np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="), copy=True).reshape(shape)


def _unpack_bytes(where: str, raw: memoryview) -> list[bytes]:
    """``BYTES`` elements: a 4-byte little-endian length, then that many bytes, repeated."""
    items: list[bytes] = []
    at = 0
    while at < len(raw):
        if at + 4 > len(raw):
            raise BadRequest(f"{where}: BYTES data ends inside an element's 4-byte length prefix")
        (size,) = struct.unpack_from("<I", raw, at)
        at += 4
        if at + size > len(raw):
            raise BadRequest(f"{where}: a BYTES element of {size} bytes runs past its binary_data_size")
        items.append(bytes(raw[at : at + size]))
        at += size
    return items


class _Binary:
    """The bytes after the JSON header, handed out in input order."""

    def __init__(self, data: memoryview | None) -> None:
        self._data, self._at = data, 0

    def take(self, where: str, size: Any) -> memoryview:
        if self._data is None:
            raise BadRequest(f"{where}: binary_data_size needs the {HEADER_LENGTH} header")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise BadRequest(f"{where}: binary_data_size must be a non-negative integer, got {size!r}")
        left = len(self._data) - self._at
        if size > left:
            raise BadRequest(
                f"{where}: binary_data_size {size} runs past the body ({left} binary bytes left)"
            )
        chunk = self._data[self._at : self._at + size]
        self._at += size
        return chunk

    def finish(self) -> None:
        if self._data is not None and self._at != len(self._data):
            raise BadRequest(
                f"{len(self._data) - self._at} bytes after the JSON header belong to no input's "
                "binary_data_size"
            )


def _reply_options(doc: Mapping[str, Any]) -> ReplyOptions:
    params = doc.get("parameters") or {}
    if not isinstance(params, dict):
        raise BadRequest("parameters must be an object")
    binary_all = params.get("binary_data_output", False)
    if not isinstance(binary_all, bool):
        raise BadRequest(f"parameters.binary_data_output must be true or false, got {binary_all!r}")
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequest(f"id must be a string, got {type(request_id).__name__}")
    wanted = doc.get("outputs")
    if wanted is None:
        return ReplyOptions(request_id, None, frozenset(), binary_all)
    if not isinstance(wanted, list):
        raise BadRequest('outputs must be a list of {"name", "parameters"}')
    names: list[str] = []
    binary: set[str] = set()
    for i, out in enumerate(wanted):
        if not isinstance(out, dict) or not isinstance(out.get("name"), str):
            raise BadRequest(f"outputs[{i}] must be an object with a name")
        out_params = out.get("parameters") or {}
        if not isinstance(out_params, dict):
            raise BadRequest(f"outputs[{i}] ({out['name']}): parameters must be an object")
        if out_params.get("classification"):
            raise BadRequest(f"outputs[{i}] ({out['name']}): the classification extension is not supported")
        flag = out_params.get("binary_data", False)
        if not isinstance(flag, bool):
            raise BadRequest(f"outputs[{i}] ({out['name']}): binary_data must be true or false")
        names.append(out["name"])
        if flag:
            binary.add(out["name"])
    return ReplyOptions(request_id, tuple(names), frozenset(binary), binary_all)


def encode_response(model_name: str, outputs: Mapping[str, np.ndarray], reply: ReplyOptions) -> OipResponse:
    """The response body; outputs the client asked for in binary follow the JSON header."""
    names = list(outputs) if reply.outputs is None else list(reply.outputs)
    tensors: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for name in names:
        array = np.asarray(outputs[name])
        entry: dict[str, Any] = {
            "name": name,
            "datatype": NUMPY_TO_OIP.get(array.dtype.name, "FP32"),
            "shape": list(array.shape),
        }
        if reply.is_binary(name):
            raw = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            entry["data"] = array.reshape(-1)
        tensors.append(entry)
    doc: dict[str, Any] = {"model_name": model_name, "outputs": tensors}
    if reply.request_id is not None:
        doc["id"] = reply.request_id
    header = dumps(doc)
    if not chunks:
        return OipResponse(header, None)
    return OipResponse(b"".join([header, *chunks]), len(header))


def spec_json(spec: TensorSpec) -> dict[str, Any]:
    """A signature entry as OIP model metadata writes it (``FP32``, ``-1`` for dynamic axes)."""
    return {**spec.to_json(), "datatype": NUMPY_TO_OIP.get(spec.dtype, spec.dtype.upper())}
