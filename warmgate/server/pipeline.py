"""The request path: decode → prepare → batcher → encode. Traffic and warmup both go through it.

The codecs are chosen once, when the pipeline is built after the model has loaded
(:func:`codecs.for_model`); a request only picks its protocol's codec from a dict.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from warmgate.errors import BadRequest
from warmgate.media import media_type
from warmgate.models.base import Item, Model
from warmgate.server import codecs
from warmgate.server.batcher import Batcher
from warmgate.server.codecs import Incoming, Protocol

__all__ = ["Pipeline", "Protocol", "Reply", "ShapeObserver"]


@dataclass(frozen=True)
class Reply:
    body: bytes
    content_type: str
    item: Item
    headers: Mapping[str, str] = field(default_factory=dict)


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
        self.codecs = codecs.for_model(model)
        self._batcher = batcher
        self._timeout_s = timeout_s
        self._observe = observe  # shape sampling for `warmgate record`

    async def handle(
        self,
        body: bytes,
        content_type: str | None,
        accept: str | None,
        protocol: Protocol = Protocol.SAGEMAKER,
        header_length: str | None = None,
    ) -> Reply:
        if not body:
            raise BadRequest("request body is empty")
        codec = self.codecs[protocol]
        request = Incoming(body, media_type(content_type), accept, header_length)
        decoded = codec.decode(request)
        item = self.model.prepare(decoded.payload)
        if self._observe is not None:
            shape = item.bucket
            rows, tokens = (shape.batch, shape.seq) if shape else (item.size, item.seq)
            self._observe(request.content_type, decoded.reply_type, rows, tokens)
        output = await self._batcher.submit(item, self._timeout_s)
        encoded = codec.encode(output, decoded)
        return Reply(encoded.body, encoded.content_type, item, encoded.headers)
