"""The request path: decode → prepare → batcher → encode. Traffic and warmup both go through it."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from warmgate.errors import BadRequest
from warmgate.models.base import Item, Model, ModelKind, RawPayload
from warmgate.server import codecs
from warmgate.server.batcher import Batcher


class Protocol(enum.Enum):
    SAGEMAKER = "sagemaker"  # POST /invocations
    OIP = "oip"  # POST /v2/models/{name}/infer (Open Inference Protocol JSON)


@dataclass(frozen=True)
class Reply:
    body: bytes
    content_type: str
    item: Item


ShapeObserver = Callable[[str, str, int, int], None]


class Pipeline:
    def __init__(
        self,
        model: Model,
        batcher: Batcher,
        timeout_s: float,
        observe: ShapeObserver | None = None,
    ) -> None:
        self.model = model
        self._batcher = batcher
        self._timeout_s = timeout_s
        self._observe = observe  # shape sampling for `warmgate record`

    async def handle(
        self,
        body: bytes,
        content_type: str | None,
        accept: str | None,
        protocol: Protocol = Protocol.SAGEMAKER,
    ) -> Reply:
        ctype = codecs.media_type(content_type)
        if not body:
            raise BadRequest("request body is empty")
        payload, out_type = self._decode(body, ctype, accept, protocol)
        item = self.model.prepare(payload)
        if self._observe is not None:
            tokens = item.key if isinstance(item.key, int) else 0
            self._observe(ctype, out_type, item.size, tokens)
        output = await self._batcher.submit(item, self._timeout_s)
        return Reply(*self._encode(output, out_type, protocol), item)

    def _decode(self, body: bytes, ctype: str, accept: str | None, protocol: Protocol) -> tuple[Any, str]:
        kind = self.model.kind
        if protocol is Protocol.OIP:
            specs = None if kind is ModelKind.TEXT else self.model.inputs
            values = codecs.decode_oip(body, specs)
            if kind is ModelKind.TEXT:
                texts = next((v for v in values.values() if isinstance(v, list)), None)
                if texts is None or len(values) != 1:
                    raise BadRequest("a text model takes one BYTES input tensor of strings")
                return texts, codecs.JSON
            return values, codecs.JSON
        if kind is ModelKind.HANDLER:
            raw = codecs.raw(body, ctype, accept)
            return raw, raw.accept
        if kind is ModelKind.TEXT:
            default = codecs.JSONLINES if ctype == codecs.JSONLINES else codecs.JSON
            out_type = codecs.negotiate(accept, codecs.TEXT_ACCEPTS, default)
            return codecs.decode_texts(body, ctype), out_type
        out_type = codecs.negotiate(accept, codecs.TENSOR_ACCEPTS, codecs.JSON)
        return codecs.decode_tensors(body, ctype, self.model.inputs), out_type

    def _encode(self, output: Any, out_type: str, protocol: Protocol) -> tuple[bytes, str]:
        if isinstance(output, RawPayload):
            return output.body, output.content_type
        if protocol is Protocol.OIP:
            return codecs.encode_oip(self.model.name, output), codecs.JSON
        if self.model.kind is ModelKind.TEXT:
            return codecs.encode_embeddings(output["embeddings"], out_type), out_type
        return codecs.encode_tensors(output, out_type), out_type
