"""The SageMaker handler convention (``code/inference.py``) through the Model protocol."""

from __future__ import annotations

import io
import json
import logging
import textwrap
from pathlib import Path

import numpy as np
import pytest

from warmgate.errors import (
    BadRequest,
    ModelError,
    ModelLoadError,
    NotAcceptable,
    UnsupportedMediaType,
    WarmupError,
)
from warmgate.models.base import Bucket, Model, ModelKind, RawPayload
from warmgate.models.handler import HandlerModel

EXAMPLE = Path(__file__).resolve().parents[2] / "fixtures" / "handler_model"
X = [[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 1.0]]
# linear.json: weight (4x3), bias (3,) -> X @ weight + bias
EXPECTED = [[4.0, 5.5, 8.5], [0.0, 0.5, 1.0]]


def handler_dir(tmp_path: Path, source: str, program: str = "inference.py") -> Path:
    code = tmp_path / "code"
    code.mkdir(parents=True, exist_ok=True)
    (code / program).write_text(textwrap.dedent(source), encoding="utf-8")
    return tmp_path


def run(model: HandlerModel, body: bytes, content_type: str, accept: str = "application/json") -> RawPayload:
    [out] = model.infer([model.prepare(RawPayload(body, content_type, accept))])
    assert isinstance(out, RawPayload)
    return out


def npy(array: object) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(array, dtype=np.float32), allow_pickle=False)
    return buf.getvalue()


@pytest.fixture
def example() -> HandlerModel:
    model = HandlerModel(EXAMPLE, name="linear")
    model.load()
    return model


def test_example_loads_with_its_helper_module(example: HandlerModel) -> None:
    assert isinstance(example, Model)
    assert example.kind is ModelKind.HANDLER
    assert example.max_batch == 1 and list(example.buckets()) == [Bucket(1)]
    meta = example.metadata()
    assert meta["program"] == "inference.py"
    assert meta["functions"] == ["model_fn", "model_warmup_fn"]
    assert meta["model_type"] == "LinearModel"  # defined in code/helpers.py


def test_json_round_trip(example: HandlerModel) -> None:
    out = run(example, json.dumps(X).encode(), "application/json")
    assert out.content_type == "application/json"
    assert np.allclose(json.loads(out.body), EXPECTED)
    star = run(example, json.dumps(X).encode(), "application/json; charset=utf-8", "*/*")
    assert star.content_type == "application/json" and star.body == out.body


def test_npy_round_trip(example: HandlerModel) -> None:
    out = run(example, npy(X), "application/x-npy", "application/x-npy")
    assert out.content_type == "application/x-npy"
    result = np.load(io.BytesIO(out.body), allow_pickle=False)
    assert result.shape == (2, 3) and np.allclose(result, EXPECTED)
    mixed = run(example, npy(X), "application/x-npy", "application/json")
    assert np.allclose(json.loads(mixed.body), EXPECTED)


def test_infer_runs_each_item(example: HandlerModel) -> None:
    items = [example.prepare(RawPayload(json.dumps([row]).encode(), "application/json")) for row in X]
    outs = example.infer(items)
    assert [json.loads(o.body)[0] for o in outs] == EXPECTED
    assert example.stats.eager_runs == 2


def test_default_codecs_give_4xx_errors(example: HandlerModel) -> None:
    with pytest.raises(BadRequest, match="not valid JSON"):
        run(example, b"{nope", "application/json")
    with pytest.raises(BadRequest, match=r"not a valid \.npy"):
        run(example, b"not npy", "application/x-npy")
    with pytest.raises(UnsupportedMediaType, match="text/csv"):
        run(example, b"1,2,3,4", "text/csv")
    with pytest.raises(NotAcceptable, match="text/html"):
        run(example, json.dumps(X).encode(), "application/json", "text/html")


def test_user_exception_is_model_error_with_its_message(
    example: HandlerModel, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="warmgate.handler"), pytest.raises(ModelError) as info:
        run(example, b"[[1, 2]]", "application/json")
    assert "expected rows of 4 features" in info.value.message
    assert isinstance(info.value.__cause__, ValueError)
    assert info.value.status == 500
    assert any(r.exc_info for r in caplog.records)


def test_model_warmup_fn_runs_through_warmup_hook(tmp_path: Path) -> None:
    model_dir = handler_dir(
        tmp_path,
        """
        from pathlib import Path

        def model_fn(model_dir):
            return lambda x: x

        def model_warmup_fn(model_dir, model):
            assert model("ping") == "ping"
            (Path(model_dir) / "warmed.txt").write_text("yes")
        """,
    )
    model = HandlerModel(model_dir)
    model.load()
    assert not (model_dir / "warmed.txt").exists()
    model.warmup_hook()
    assert (model_dir / "warmed.txt").read_text() == "yes"


def test_warmup_hook_without_model_warmup_fn_and_failing_one(tmp_path: Path) -> None:
    quiet = HandlerModel(handler_dir(tmp_path / "a", "def model_fn(d):\n    return len\n"))
    quiet.load()
    quiet.warmup_hook()  # nothing defined: nothing to do
    failing = HandlerModel(
        handler_dir(
            tmp_path / "b",
            """
            def model_fn(model_dir):
                return len

            def model_warmup_fn(model_dir, model):
                raise RuntimeError("GPU not ready")
            """,
        )
    )
    failing.load()
    with pytest.raises(WarmupError, match="GPU not ready"):
        failing.warmup_hook()


def test_transform_fn_variant(tmp_path: Path) -> None:
    model_dir = handler_dir(
        tmp_path,
        """
        def model_fn(model_dir):
            return str.upper

        def transform_fn(model, body, content_type, accept):
            return model(body.decode()), "text/plain"
        """,
        program="serve_me.py",
    )
    model = HandlerModel(model_dir, program="serve_me.py")
    model.load()
    out = run(model, b"one piece", "text/plain", "text/plain")
    assert out == RawPayload(b"ONE PIECE", "text/plain")
    assert model.metadata()["functions"] == ["model_fn", "transform_fn"]


def test_custom_chain_gets_raw_bytes_and_accept(tmp_path: Path) -> None:
    model_dir = handler_dir(
        tmp_path,
        """
        def model_fn(model_dir):
            return sum

        def input_fn(body, content_type):
            assert isinstance(body, bytes) and content_type == "text/csv"
            return [int(v) for v in body.decode().split(",")]

        def predict_fn(data, model):
            return model(data)

        def output_fn(prediction, accept):
            return f"{accept}:{prediction}"
        """,
    )
    model = HandlerModel(model_dir)
    model.load()
    assert run(model, b"1,2,3", "text/csv", "text/plain") == RawPayload(b"text/plain:6", "text/plain")


@pytest.mark.parametrize("other", ["input_fn", "predict_fn", "output_fn"])
def test_transform_fn_with_others_is_a_load_error(tmp_path: Path, other: str) -> None:
    model_dir = handler_dir(
        tmp_path,
        f"""
        def model_fn(model_dir):
            return None

        def transform_fn(model, body, content_type, accept):
            return body

        def {other}(*args):
            return None
        """,
    )
    with pytest.raises(ModelLoadError, match=f"transform_fn together with {other}"):
        HandlerModel(model_dir).load()


def test_bad_import_is_load_error_with_original_exception(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model_dir = handler_dir(tmp_path, "import a_module_that_does_not_exist_anywhere\n")
    with caplog.at_level(logging.ERROR, logger="warmgate.handler"), pytest.raises(ModelLoadError) as info:
        HandlerModel(model_dir).load()
    assert "a_module_that_does_not_exist_anywhere" in info.value.message
    assert "ModuleNotFoundError" in info.value.message
    assert isinstance(info.value.__cause__, ModuleNotFoundError)
    assert any(r.exc_info and r.name == "warmgate.handler" for r in caplog.records)


def test_syntax_error_and_raising_model_fn_are_load_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="SyntaxError") as info:
        HandlerModel(handler_dir(tmp_path / "a", "def model_fn(:\n")).load()
    assert isinstance(info.value.__cause__, SyntaxError)
    raising = handler_dir(tmp_path / "b", "def model_fn(d):\n    raise OSError('weights missing')\n")
    with pytest.raises(ModelLoadError, match=r"model_fn .* raised OSError: weights missing"):
        HandlerModel(raising).load()


def test_missing_program_model_fn_and_uncallable_model(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        HandlerModel(tmp_path / "empty").load()
    with pytest.raises(ModelLoadError, match="defines no model_fn"):
        HandlerModel(handler_dir(tmp_path / "a", "x = 1\n")).load()
    with pytest.raises(ModelLoadError, match="not callable"):
        HandlerModel(handler_dir(tmp_path / "b", "def model_fn(d):\n    return 42\n")).load()
    with pytest.raises(ModelLoadError, match="predict_fn is a int"):
        HandlerModel(handler_dir(tmp_path / "c", "def model_fn(d):\n    return len\npredict_fn = 3\n")).load()


def test_output_of_wrong_type_is_model_error(tmp_path: Path) -> None:
    model_dir = handler_dir(
        tmp_path,
        """
        def model_fn(model_dir):
            return None

        def transform_fn(model, body, content_type, accept):
            return [1, 2]
        """,
    )
    model = HandlerModel(model_dir)
    model.load()
    with pytest.raises(ModelError, match="must return bytes or str"):
        run(model, b"{}", "application/json")


def test_json_input_that_is_not_numeric_stays_python(tmp_path: Path) -> None:
    model_dir = handler_dir(
        tmp_path,
        """
        def model_fn(model_dir):
            return lambda data: {"type": type(data).__name__}
        """,
    )
    model = HandlerModel(model_dir)
    model.load()
    assert json.loads(run(model, b'{"inputs": ["x"]}', "application/json").body) == {"type": "dict"}
    assert json.loads(run(model, b'["a", "b"]', "application/json").body) == {"type": "list"}
    assert json.loads(run(model, b"[[1], [2, 3]]", "application/json").body) == {"type": "list"}
    assert json.loads(run(model, b"[1.5, 2]", "application/json").body) == {"type": "ndarray"}


def test_placeholder_synthetic_request(example: HandlerModel) -> None:
    request = example.synthetic_request(Bucket(1))
    assert request.body == b"{}" and request.content_type == "application/json"
