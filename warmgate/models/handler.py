"""The SageMaker handler convention: a user's ``code/inference.py`` serves the model.

The program (``inference.py``, or the file ``SAGEMAKER_PROGRAM`` names, inside ``code/``) is
imported the way SageMaker's inference toolkits do, under a unique module name, with ``code/``
on ``sys.path`` so the user's own helper modules import. It may define:

* ``model_fn(model_dir) -> model`` (required),
* ``input_fn(body, content_type) -> data``, ``predict_fn(data, model) -> prediction``,
  ``output_fn(prediction, accept) -> body`` — each optional, with defaults below;
* **or** ``transform_fn(model, body, content_type, accept) -> body`` instead of those three
  (defining both styles is a load error, as in the toolkits);
* ``model_warmup_fn(model_dir, model)`` (optional): run once during WARMING, on the inference
  thread, through :meth:`HandlerModel.warmup_hook`.

``output_fn`` and ``transform_fn`` return ``bytes`` or ``str``, or a ``(body, content_type)``
tuple; without a content type the response is of the requested ``accept`` type.

Defaults: ``input_fn`` decodes ``application/json`` (a list of numbers becomes a numpy array,
anything else stays the parsed JSON value) and ``application/x-npy`` (``allow_pickle=False``),
else 415. ``predict_fn`` calls ``model(data)``. ``output_fn`` encodes JSON (numpy arrays and
scalars become lists and numbers) or npy, by ``Accept`` (``*/*`` means JSON), else 406.

Errors: a bad import, a missing ``model_fn`` or a failing one is a :class:`ModelLoadError`
(phase FAILED, traceback in the log). While serving, an exception from user code is a
:class:`ModelError` (500) with the handler's message; the defaults' own 4xx errors pass through.
"""

from __future__ import annotations

import importlib.util
import io
import itertools
import json
import logging
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from warmgate.errors import (
    BadRequest,
    ClientError,
    ModelError,
    ModelLoadError,
    NotAcceptable,
    UnsupportedMediaType,
    WarmupError,
)
from warmgate.media import JSON, NPY, WILDCARDS, accept_list, media_type
from warmgate.models.base import (
    Bucket,
    Item,
    ModelKind,
    ModelStats,
    RawPayload,
    SyntheticRequest,
    TensorSpec,
)

logger = logging.getLogger("warmgate.handler")

DEFAULT_PROGRAM = "inference.py"
HANDLER_FUNCTIONS = (
    "model_fn",
    "input_fn",
    "predict_fn",
    "output_fn",
    "transform_fn",
    "model_warmup_fn",
)
_CHAIN = ("input_fn", "predict_fn", "output_fn")
_module_ids = itertools.count(1)


class HandlerModel:
    """A :class:`~warmgate.models.base.Model` backed by a user's SageMaker-style handler.

    One request is one item (``max_batch`` 1, one bucket): user code sees exactly the bytes the
    client sent. :meth:`synthetic_request` cannot know what a user handler accepts, so it only
    returns a placeholder ``{}`` JSON request and the runtime does not send it for handler models;
    warm a handler with ``warmup/*.jsonl`` prompt sets and ``model_warmup_fn`` instead.
    """

    kind = ModelKind.HANDLER

    def __init__(self, model_dir: str | Path, name: str = "model", program: str = "") -> None:
        self.name = name
        self.model_dir = Path(model_dir)
        self.program = program or DEFAULT_PROGRAM
        self.stats = ModelStats()
        self._functions: dict[str, Callable[..., Any]] = {}
        self._model: Any = None
        self._loaded = False

    @property
    def program_path(self) -> Path:
        """``code/<program>`` inside the model directory (``.py`` added when missing)."""
        program = self.program if self.program.endswith(".py") else f"{self.program}.py"
        path = Path(program)
        return path if path.is_absolute() else self.model_dir / "code" / path

    # --- loading ---------------------------------------------------------------------------

    def load(self) -> None:
        if self._loaded:
            return
        module = self._import()
        functions: dict[str, Callable[..., Any]] = {}
        for fn_name in HANDLER_FUNCTIONS:
            fn = getattr(module, fn_name, None)
            if fn is None:
                continue
            if not callable(fn):
                raise ModelLoadError(
                    f"{self.program_path}: {fn_name} is a {type(fn).__name__}, not a function"
                )
            functions[fn_name] = fn
        both = [f for f in _CHAIN if f in functions]
        if "transform_fn" in functions and both:
            raise ModelLoadError(
                f"{self.program_path} defines transform_fn together with {', '.join(both)}; "
                "define either transform_fn alone, or input_fn/predict_fn/output_fn"
            )
        if "model_fn" not in functions:
            raise ModelLoadError(
                f"{self.program_path} defines no model_fn; add `def model_fn(model_dir):` "
                "that loads and returns the model"
            )
        try:
            model = functions["model_fn"](str(self.model_dir))
        except Exception as e:  # the user-code boundary
            logger.exception("model_fn of %s failed", self.program_path)
            raise ModelLoadError(f"model_fn in {self.program_path} raised {type(e).__name__}: {e}") from e
        if not ({"transform_fn", "predict_fn"} & functions.keys()) and not callable(model):
            raise ModelLoadError(
                f"model_fn in {self.program_path} returned a {type(model).__name__}, which is "
                "not callable, and there is no predict_fn (or transform_fn) to use it"
            )
        self._functions, self._model, self._loaded = functions, model, True
        logger.info("loaded handler %s (functions: %s)", self.program_path, ", ".join(sorted(functions)))

    def _import(self) -> ModuleType:
        path = self.program_path
        if not path.is_file():
            raise ModelLoadError(
                f"handler program {path} does not exist (SAGEMAKER_PROGRAM names a file in code/)"
            )
        stem = re.sub(r"\W", "_", path.stem)
        module_name = f"warmgate_user_handler_{next(_module_ids)}_{stem}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise ModelLoadError(f"cannot import {path}: not a Python source file")
        code_dir = str(path.parent)
        if code_dir not in sys.path:
            sys.path.insert(0, code_dir)  # the user's own helper modules live next to it
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as e:  # the user-code boundary
            sys.modules.pop(module_name, None)
            logger.exception("importing handler %s failed", path)
            raise ModelLoadError(f"cannot import {path}: {type(e).__name__}: {e}") from e
        return module

    # --- the Model protocol ------------------------------------------------------------------

    @property
    def inputs(self) -> Sequence[TensorSpec]:
        return ()

    @property
    def outputs(self) -> Sequence[TensorSpec]:
        return ()

    @property
    def max_batch(self) -> int:
        return 1

    @property
    def fixed_batch(self) -> bool:
        return False

    def buckets(self) -> Sequence[Bucket]:
        return [Bucket(1)]

    def prepare(self, payload: Any) -> Item:
        if not isinstance(payload, RawPayload):
            raise TypeError(f"a handler model takes RawPayload, got {type(payload).__name__}")
        return Item(key="raw", size=1, payload=payload)

    def infer(self, items: Sequence[Item]) -> list[Any]:
        """Run the handler chain for each item, in order, on the calling thread."""
        if not self._loaded:
            raise RuntimeError("HandlerModel.load() must run before infer()")
        outputs: list[Any] = []
        for item in items:
            outputs.append(self._handle(item.payload))
            self.stats.eager_runs += 1
        return outputs

    def synthetic_request(self, bucket: Bucket) -> SyntheticRequest:
        """A placeholder (``{}`` as JSON): what a user handler accepts is unknowable here."""
        return SyntheticRequest(f"handler-{bucket.label()}", b"{}", JSON, JSON)

    @property
    def instances(self) -> int:
        """One call at a time: a user's handler is not assumed thread-safe."""
        return 1

    def seal(self) -> None:
        """Nothing is captured for a handler."""

    def metadata(self) -> Mapping[str, Any]:
        return {
            "backend": "sagemaker-handler",
            "program": self.program,
            "program_path": str(self.program_path),
            "functions": sorted(self._functions),
            "model_type": type(self._model).__name__ if self._loaded else None,
        }

    def warmup_hook(self) -> None:
        """Call the user's ``model_warmup_fn(model_dir, model)`` if it has one; a failure is a
        :class:`WarmupError` (the phase goes FAILED)."""
        fn = self._functions.get("model_warmup_fn")
        if fn is None:
            return
        try:
            fn(str(self.model_dir), self._model)
        except Exception as e:  # the user-code boundary
            logger.exception("model_warmup_fn of %s failed", self.program_path)
            raise WarmupError(f"model_warmup_fn raised {type(e).__name__}: {e}") from e

    # --- one request ---------------------------------------------------------------------------

    def _handle(self, raw: RawPayload) -> RawPayload:
        accept = _effective_accept(raw.accept)
        fns, model = self._functions, self._model
        if "transform_fn" in fns:
            result = _call("transform_fn", fns["transform_fn"], model, raw.body, raw.content_type, accept)
        else:
            data = _call("input_fn", fns.get("input_fn", default_input_fn), raw.body, raw.content_type)
            prediction = _call("predict_fn", fns.get("predict_fn", default_predict_fn), data, model)
            result = _call("output_fn", fns.get("output_fn", default_output_fn), prediction, accept)
        return _response(result, accept)


def default_input_fn(body: bytes, content_type: str) -> Any:
    """JSON or npy into Python/numpy values (see the module docstring)."""
    media = media_type(content_type) or JSON
    if media == JSON:
        try:
            value = json.loads(body)
        except ValueError as e:
            raise BadRequest(f"request body is not valid JSON: {e}") from None
        if isinstance(value, list):
            try:
                array = np.asarray(value)
            except ValueError:  # ragged nesting: keep the list
                return value
            if array.dtype.kind in "biuf":
                return array
        return value
    if media == NPY:
        try:
            return np.load(io.BytesIO(body), allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise BadRequest(f"request body is not a valid .npy array: {e}") from None
    raise UnsupportedMediaType(
        f"this handler has no input_fn, and the default one decodes {JSON} and {NPY}, not {content_type!r}"
    )


def default_predict_fn(data: Any, model: Any) -> Any:
    return model(data)


def default_output_fn(prediction: Any, accept: str) -> tuple[bytes, str]:
    """JSON or npy by ``accept`` (the first acceptable entry of the list)."""
    for media in accept_list(accept) or [JSON]:
        if media == JSON or media in WILDCARDS:
            return json.dumps(prediction, default=_json_default).encode(), JSON
        if media == NPY:
            buf = io.BytesIO()
            np.save(buf, np.asarray(prediction), allow_pickle=False)
            return buf.getvalue(), NPY
    raise NotAcceptable(
        f"this handler has no output_fn, and the default one encodes {JSON} and {NPY}, not {accept!r}"
    )


def _call(stage: str, fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return fn(*args)
    except ClientError:
        raise
    except Exception as e:  # the user-code boundary
        logger.exception("handler %s raised", stage)
        raise ModelError(f"handler {stage} raised {type(e).__name__}: {e}") from e


def _response(result: Any, accept: str) -> RawPayload:
    content_type = accept.split(",")[0].strip() or JSON
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], str):
        result, content_type = result
    if isinstance(result, str):
        return RawPayload(result.encode("utf-8"), content_type)
    if isinstance(result, bytes | bytearray | memoryview):
        return RawPayload(bytes(result), content_type)
    raise ModelError(
        f"the handler returned {type(result).__name__}; output_fn/transform_fn must return "
        "bytes or str, or a (body, content_type) tuple"
    )


def _effective_accept(accept: str) -> str:
    """SageMaker's rule: no Accept, or ``*/*``, means the default (JSON)."""
    value = accept.strip()
    return JSON if not value or media_type(value) == "*/*" else value


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
