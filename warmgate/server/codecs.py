"""Bytes ⇄ payloads: the media types warmgate speaks.

Decoding turns an HTTP body into the payload a model kind expects (see ``models.base``);
encoding turns a model's output back into bytes for the client's ``Accept``. Every client
mistake raises a ``ClientError`` that names what was wrong.

:func:`for_model` picks, once when the model has loaded, the :class:`Codec` of each protocol
for the model's kind, so a request never switches on protocol × kind: it calls ``decode``,
the model, then ``encode``. The Open Inference Protocol's bodies live in :mod:`.oip`.
"""

from __future__ import annotations

import abc
import enum
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from warmgate.errors import BadRequest, NotAcceptable, UnsupportedMediaType
from warmgate.media import (
    JSON,
    JSONL,
    JSONLINES,
    NPY,
    NPZ,
    OCTET_STREAM,
    TEXT,
    WILDCARDS,
    accept_list,
    media_type,
)
from warmgate.models.base import Model, ModelKind, RawPayload, TensorSpec
from warmgate.server import oip
from warmgate.server.json_body import dumps, loads

__all__ = ["JSON", "JSONLINES", "NPY", "NPZ", "TEXT", "media_type", "oip_spec"]

oip_spec = oip.spec_json


def negotiate(accept: str | None, offered: Sequence[str], default: str) -> str:
    """The first type of ``Accept`` we offer; ``default`` for a missing or wildcard Accept."""
    wanted = accept_list(accept)
    if not wanted:
        return default
    for want in wanted:
        if want in WILDCARDS and default in offered:
            return default
        if want in offered:
            return want
        if want == JSONL and JSONLINES in offered:
            return JSONLINES
    raise NotAcceptable(f"cannot produce Accept {accept!r}; this model offers {', '.join(offered)}")


def _npy(body: bytes) -> np.ndarray:
    try:
        return np.load(io.BytesIO(body), allow_pickle=False)  # type: ignore[no-any-return]
    except (ValueError, OSError, EOFError) as exc:
        raise BadRequest(f"body is not a valid .npy array: {exc}") from exc


def _npz(body: bytes) -> dict[str, np.ndarray]:
    try:
        with np.load(io.BytesIO(body), allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (ValueError, OSError, EOFError) as exc:
        raise BadRequest(f"body is not a valid .npz archive: {exc}") from exc


# --- tensors ------------------------------------------------------------------------------------


def conform(name: str, value: Any, spec: TensorSpec) -> np.ndarray:
    """Cast ``value`` to ``spec``'s dtype and check its rank and fixed dimensions."""
    want = np.dtype(spec.dtype)
    try:
        array = np.asarray(value)
    except ValueError as exc:
        raise BadRequest(f"input {name!r} is not a rectangular array: {exc}") from exc
    if array.dtype == object or array.dtype.kind in "USV":
        raise BadRequest(f"input {name!r} must hold numbers of dtype {spec.dtype}, got {array.dtype}")
    fractional = array.dtype.kind == "f" and not (
        np.all(np.isfinite(array)) and np.all(array == np.round(array))
    )
    if want.kind in "iub" and fractional:
        raise BadRequest(f"input {name!r} expects dtype {spec.dtype} but got fractional values")
    if want.kind == "b" and array.dtype.kind not in "bi":
        raise BadRequest(f"input {name!r} expects dtype bool, got {array.dtype}")
    if array.ndim != len(spec.shape):
        raise BadRequest(
            f"input {name!r} must have rank {len(spec.shape)} (shape {_shape(spec.shape)}), "
            f"got shape {list(array.shape)}"
        )
    for axis, (got, fixed) in enumerate(zip(array.shape, spec.shape, strict=True)):
        if fixed is not None and got != fixed:
            raise BadRequest(
                f"input {name!r} axis {axis} must be {fixed} (shape {_shape(spec.shape)}), "
                f"got shape {list(array.shape)}"
            )
    if array.size == 0:
        raise BadRequest(f"input {name!r} is empty (shape {list(array.shape)})")
    return np.ascontiguousarray(array.astype(want, copy=False))


def _shape(shape: Sequence[int | None]) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def named(values: Mapping[str, Any], specs: Sequence[TensorSpec]) -> dict[str, np.ndarray]:
    names = [s.name for s in specs]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise BadRequest(f"unknown input name(s) {unknown}; the model's inputs are {names}")
    missing = [n for n in names if n not in values]
    if missing:
        raise BadRequest(f"missing input(s) {missing}; the model's inputs are {names}")
    return {s.name: conform(s.name, values[s.name], s) for s in specs}


def _single(value: Any, specs: Sequence[TensorSpec]) -> dict[str, np.ndarray]:
    if len(specs) != 1:
        raise BadRequest(
            f"the model has {len(specs)} inputs {[s.name for s in specs]}; "
            'send {"inputs": {name: values, ...}}'
        )
    return {specs[0].name: conform(specs[0].name, value, specs[0])}


def decode_tensors(body: bytes, content_type: str, specs: Sequence[TensorSpec]) -> dict[str, np.ndarray]:
    """SageMaker-style tensors: JSON ``{"inputs": {name: values}}``, ``{"inputs": values}`` or a bare
    list (single-input models), ``application/x-npy`` (single input) or ``application/x-npz``."""
    if content_type in (JSON, ""):
        doc = loads(body)
        if isinstance(doc, dict):
            if "inputs" not in doc:
                raise BadRequest('JSON body must be {"inputs": ...} or a bare array')
            inputs = doc["inputs"]
            return named(inputs, specs) if isinstance(inputs, dict) else _single(inputs, specs)
        if isinstance(doc, list):
            return _single(doc, specs)
        raise BadRequest(f"JSON body must be an object or array, got {type(doc).__name__}")
    if content_type == NPY:
        return _single(_npy(body), specs)
    if content_type == NPZ:
        return named(_npz(body), specs)
    raise UnsupportedMediaType(f"Content-Type {content_type!r} is not supported; use {JSON}, {NPY} or {NPZ}")


def encode_tensors(outputs: Mapping[str, np.ndarray], accept: str) -> bytes:
    if accept == JSON:
        return dumps({"outputs": dict(outputs)})
    if accept == NPY:
        if len(outputs) != 1:
            raise NotAcceptable(
                f"{NPY} holds one array but the model has {len(outputs)} outputs; ask for {NPZ}"
            )
        return _npy_bytes(next(iter(outputs.values())))
    buf = io.BytesIO()
    np.savez(buf, **dict(outputs))  # type: ignore[arg-type]
    return buf.getvalue()


TENSOR_ACCEPTS = (JSON, NPY, NPZ)


# --- text ---------------------------------------------------------------------------------------


def _jsonline_text(line: str, number: int) -> str:
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"line {number} is not valid JSON: {exc}") from exc
    if isinstance(value, dict):
        value = value.get("inputs", value.get("text"))
    if not isinstance(value, str):
        raise BadRequest(f'line {number} must be a JSON string or {{"inputs": "text"}}')
    return value


def decode_texts(body: bytes, content_type: str) -> Any:
    """Texts for an embedding model: JSON ``{"inputs": [...]}`` / ``{"inputs": "..."}`` / bare
    string or list, ``text/plain`` (one text), ``application/jsonlines`` (one text a line).

    Only the envelope is checked here: the model's ``prepare`` validates the texts, once."""
    if content_type in (JSON, ""):
        doc = loads(body)
        if isinstance(doc, dict):
            if "inputs" not in doc:
                raise BadRequest('JSON body must be {"inputs": [texts]} or a bare string or list')
            return doc["inputs"]
        return doc
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"body is not valid UTF-8: {exc}") from exc
    if content_type == TEXT:
        return [text]
    if content_type in (JSONLINES, JSONL):
        lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
        if not lines:
            raise BadRequest("jsonlines body has no lines")
        return [_jsonline_text(line, n) for n, line in lines]
    raise UnsupportedMediaType(
        f"Content-Type {content_type!r} is not supported for text; use {JSON}, {TEXT} or {JSONLINES}"
    )


def encode_embeddings(embeddings: np.ndarray, accept: str) -> bytes:
    if accept == JSON:
        return dumps({"embeddings": embeddings})
    if accept == JSONLINES:
        return b"".join(dumps({"embedding": row}) + b"\n" for row in embeddings)
    return _npy_bytes(embeddings)


TEXT_ACCEPTS = (JSON, JSONLINES, NPY)


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def raw(body: bytes, content_type: str, accept: str | None) -> RawPayload:
    """A handler model's payload: bytes untouched, media types normalised."""
    return RawPayload(body, content_type or JSON, media_type(accept) or JSON)


# --- one codec per protocol × model kind, chosen at load ---------------------------------------


class Protocol(enum.Enum):
    SAGEMAKER = "sagemaker"  # POST /invocations
    OIP = "oip"  # POST /v2/models/{name}/infer (Open Inference Protocol, JSON or binary tensors)


@dataclass(frozen=True)
class Incoming:
    """One request's body and the headers a codec may read (already essence-parsed type)."""

    body: bytes
    content_type: str
    accept: str | None = None
    header_length: str | None = None  # OIP binary extension: Inference-Header-Content-Length


@dataclass(frozen=True)
class Decoded:
    payload: Any  # what ``model.prepare`` takes
    reply_type: str  # the media type the answer will have (what the shape recorder notes)
    options: Any = None  # codec-private: what ``encode`` needs from the request


@dataclass(frozen=True)
class Encoded:
    body: bytes
    content_type: str
    headers: Mapping[str, str] = field(default_factory=dict)


class Codec(abc.ABC):
    """Bytes → a model's payload, and its output → bytes, for one protocol and model kind."""

    def __init__(self, model: Model) -> None:
        self.model = model

    @abc.abstractmethod
    def decode(self, request: Incoming) -> Decoded: ...

    @abc.abstractmethod
    def encode(self, output: Any, decoded: Decoded) -> Encoded: ...


class TextCodec(Codec):
    def decode(self, request: Incoming) -> Decoded:
        default = JSONLINES if request.content_type in (JSONLINES, JSONL) else JSON
        reply_type = negotiate(request.accept, TEXT_ACCEPTS, default)
        return Decoded(decode_texts(request.body, request.content_type), reply_type)

    def encode(self, output: Any, decoded: Decoded) -> Encoded:
        return Encoded(encode_embeddings(output, decoded.reply_type), decoded.reply_type)


class TensorCodec(Codec):
    def decode(self, request: Incoming) -> Decoded:
        reply_type = negotiate(request.accept, TENSOR_ACCEPTS, JSON)
        return Decoded(decode_tensors(request.body, request.content_type, self.model.inputs), reply_type)

    def encode(self, output: Any, decoded: Decoded) -> Encoded:
        return Encoded(encode_tensors(output, decoded.reply_type), decoded.reply_type)


class HandlerCodec(Codec):
    """A user handler decodes and encodes its own bytes."""

    def decode(self, request: Incoming) -> Decoded:
        payload = raw(request.body, request.content_type, request.accept)
        return Decoded(payload, payload.accept)

    def encode(self, output: Any, decoded: Decoded) -> Encoded:
        result: RawPayload = output
        return Encoded(result.body, result.content_type)


class OipCodec(Codec):
    """Open Inference Protocol tensors (JSON or the binary extension) for a TENSOR model."""

    def decode(self, request: Incoming) -> Decoded:
        names = [s.name for s in self.model.outputs]
        parsed = oip.decode_request(request.body, request.header_length, self.model.inputs, names)
        return Decoded(named(parsed.values, self.model.inputs), JSON, parsed.reply)

    def encode(self, output: Any, decoded: Decoded) -> Encoded:
        return self._encoded(output, decoded)

    def _encoded(self, outputs: Mapping[str, np.ndarray], decoded: Decoded) -> Encoded:
        response = oip.encode_response(self.model.name, outputs, decoded.options)
        if response.header_length is None:
            return Encoded(response.body, JSON)
        return Encoded(response.body, OCTET_STREAM, {oip.HEADER_LENGTH: str(response.header_length)})


class OipTextCodec(OipCodec):
    """A text model over OIP: one ``BYTES`` input of strings in, its embeddings output out."""

    def decode(self, request: Incoming) -> Decoded:
        names = [s.name for s in self.model.outputs]
        parsed = oip.decode_request(request.body, request.header_length, None, names)
        texts = next(iter(parsed.values.values()))
        if len(parsed.values) != 1 or not isinstance(texts, list):
            raise BadRequest("a text model takes one BYTES input tensor of strings")
        return Decoded(texts, JSON, parsed.reply)

    def encode(self, output: Any, decoded: Decoded) -> Encoded:
        return self._encoded({self.model.outputs[0].name: output}, decoded)


class OipUnsupported(Codec):
    def decode(self, request: Incoming) -> Decoded:
        raise BadRequest(
            f"model {self.model.name!r} is a SageMaker handler (code/inference.py): "
            "send its requests to /invocations"
        )

    def encode(self, output: Any, decoded: Decoded) -> Encoded:
        raise AssertionError("never reached: decode refuses every request")


_CODECS: dict[tuple[Protocol, ModelKind], type[Codec]] = {
    (Protocol.SAGEMAKER, ModelKind.TEXT): TextCodec,
    (Protocol.SAGEMAKER, ModelKind.TENSOR): TensorCodec,
    (Protocol.SAGEMAKER, ModelKind.HANDLER): HandlerCodec,
    (Protocol.OIP, ModelKind.TEXT): OipTextCodec,
    (Protocol.OIP, ModelKind.TENSOR): OipCodec,
    (Protocol.OIP, ModelKind.HANDLER): OipUnsupported,
}


def for_model(model: Model) -> dict[Protocol, Codec]:
    """The codec of every protocol for ``model``'s kind; called once, when the model has loaded."""
    return {protocol: _CODECS[protocol, model.kind](model) for protocol in Protocol}
