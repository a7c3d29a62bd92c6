"""A SageMaker-style ``code/inference.py`` served end to end over HTTP."""

from __future__ import annotations

import io
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import serving

EXAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "handler_model"


@pytest.fixture
def handler_dir(tmp_path: Path) -> Path:
    return Path(shutil.copytree(EXAMPLE, tmp_path / "handler"))


def test_example_handler_over_http(handler_dir: Path) -> None:
    (handler_dir / "warmup").mkdir()
    (handler_dir / "warmup" / "smoke.jsonl").write_text('{"name": "one-row", "body": [[1, 2, 3, 4]]}\n')
    with serving(handler_dir) as client:
        ready = client.get("/readyz").json()
        assert ready["phase"] == "ready"
        assert ready["warmup"] == {"done": 1, "total": 1, "current": ""}  # the prompt set, no synthetic
        as_json = client.post("/invocations", json=[[1, 2, 3, 4], [0, 0, 0, 0]])
        assert as_json.status_code == 200
        rows = np.asarray(as_json.json())
        assert rows.shape == (2, 3)
        buf = io.BytesIO()
        np.save(buf, np.array([[1, 2, 3, 4]], np.float32))
        as_npy = client.post(
            "/invocations",
            content=buf.getvalue(),
            headers={"Content-Type": "application/x-npy", "Accept": "application/x-npy"},
        )
        assert as_npy.status_code == 200
        np.testing.assert_allclose(np.load(io.BytesIO(as_npy.content)), rows[:1], rtol=1e-5)
        assert (
            client.post("/invocations", content=b"1,2", headers={"Content-Type": "text/csv"}).status_code
            == 415
        )
        failing = client.post("/invocations", json=[[1, 2]])  # the user's model raises on a wrong width
        assert failing.status_code == 500
        assert failing.json()["error"] == "model_error"
        meta = client.get("/v2/models/handler").json()
        assert meta["kind"] == "handler" and "model_fn" in meta["functions"]


def test_transform_fn_with_input_fn_is_failed_at_startup(handler_dir: Path) -> None:
    (handler_dir / "code" / "inference.py").write_text(
        "def model_fn(d):\n    return 1\n\ndef input_fn(b, c):\n    return b\n\n"
        "def transform_fn(m, b, c, a):\n    return b\n"
    )
    with serving(handler_dir) as client:
        body = client.get("/ping").json()
        assert body["phase"] == "failed"
        assert "transform_fn" in body["reason"]


def test_bad_import_is_failed_with_traceback_in_log(
    handler_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    (handler_dir / "code" / "inference.py").write_text("import not_a_module_anywhere\n")
    with serving(handler_dir) as client:
        body = client.get("/ping").json()
        assert body["phase"] == "failed"
        assert "not_a_module_anywhere" in body["reason"]
    assert "Traceback" in caplog.text


def test_sagemaker_program_selects_the_file(handler_dir: Path) -> None:
    (handler_dir / "code" / "inference.py").rename(handler_dir / "code" / "serve_me.py")
    with serving(handler_dir, program="serve_me.py") as client:
        assert client.get("/ping").status_code == 200
        assert client.post("/invocations", json=[[1, 2, 3, 4]]).status_code == 200
