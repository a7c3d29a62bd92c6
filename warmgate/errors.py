"""warmgate's exception hierarchy, and the one place errors become HTTP statuses.

::

    WarmgateError                   base; never raised directly
    ├── ClientError                 4xx: the request is wrong, the client can fix it
    │   ├── BadRequest              400  malformed body, wrong dtype/rank/shape, bad input name
    │   ├── NotFound                404  unknown model name or route
    │   ├── PayloadTooLarge         413  body over SAGEMAKER_MAX_PAYLOAD_IN_MB, shape past every bucket
    │   ├── UnsupportedMediaType    415  Content-Type we cannot decode
    │   └── NotAcceptable           406  Accept we cannot encode
    ├── Unavailable                 503  not READY, draining, or admission queue full (Retry-After)
    ├── InferenceTimeout            504  past SAGEMAKER_MODEL_SERVER_TIMEOUT
    ├── ModelError                  500  the model or user handler raised while serving
    ├── ConfigError                 invalid configuration (startup; never reaches HTTP)
    ├── ModelLoadError              weights/graph/handler could not be loaded → FAILED
    └── WarmupError                 a warmup request failed or the deadline passed → FAILED

Each class carries its ``status``; :func:`http_status` is the only mapping.
"""

from __future__ import annotations


class WarmgateError(Exception):
    """Base of every warmgate error."""

    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_json(self) -> dict[str, object]:
        return {"error": self.code, "message": self.message}


class ClientError(WarmgateError):
    status = 400
    code = "bad_request"


class BadRequest(ClientError):
    status = 400
    code = "bad_request"


class NotFound(ClientError):
    status = 404
    code = "not_found"


class PayloadTooLarge(ClientError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(ClientError):
    status = 415
    code = "unsupported_media_type"


class NotAcceptable(ClientError):
    status = 406
    code = "not_acceptable"


class Conflict(ClientError):
    """The request is valid but this replica's configuration or model rules it out."""

    status = 409
    code = "conflict"


class Unavailable(WarmgateError):
    status = 503
    code = "unavailable"

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class InferenceTimeout(WarmgateError):
    status = 504
    code = "timeout"


class ModelError(WarmgateError):
    status = 500
    code = "model_error"


class ConfigError(WarmgateError):
    code = "config_error"


class ModelLoadError(WarmgateError):
    code = "model_load_error"


class WarmupError(WarmgateError):
    code = "warmup_error"


def http_status(error: BaseException) -> int:
    """The HTTP status for any exception: ours carry it, anything else is our bug (500)."""
    return error.status if isinstance(error, WarmgateError) else 500
