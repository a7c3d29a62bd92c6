"""ONNX Runtime sessions: the on-disk optimised-graph cache and the arena policies, on real models."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from tests import onnx_models
from warmgate.config import Arena
from warmgate.models.onnx_backend import OnnxModel
from warmgate.models.ort_session import OrtSettings, open_session

X = np.arange(8, dtype=np.float32).reshape(2, 4)


def _linear(path: Path, scale: float) -> Path:
    """The test suite's linear model with its weight scaled by ``scale``."""
    onnx_models.linear(path)
    model = onnx.load(str(path))
    for i, init in enumerate(model.graph.initializer):
        if init.name == "W":
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(onnx_models.WEIGHT * scale, "W"))
    onnx.save(model, str(path))
    return path


def _serve(path: Path, cache: Path) -> tuple[np.ndarray, str]:
    model = OnnxModel(path, "linear", (1, 2), ort=OrtSettings(threads=1, cache_dir=cache))
    model.load()
    (out,) = model.infer([model.prepare({"x": X})])
    return out["y"], str(model.metadata()["graph_cache"])


def _expected(scale: float) -> np.ndarray:
    return X @ (onnx_models.WEIGHT * scale) + onnx_models.BIAS


def test_second_start_runs_the_cached_graph(tmp_path: Path) -> None:
    model, cache = _linear(tmp_path / "m" / "model.onnx", 1.0), tmp_path / "cache"
    y, state = _serve(model, cache)
    assert state == "miss"
    np.testing.assert_allclose(y, _expected(1.0), rtol=1e-6)
    (cached,) = cache.glob("*.onnx")
    # Plant another graph under the cache key: a start that reads the cache now computes with it.
    shutil.copy(_linear(tmp_path / "other" / "model.onnx", 3.0), cached)
    y, state = _serve(model, cache)
    assert state == "hit"
    np.testing.assert_allclose(y, _expected(3.0), rtol=1e-6)


def test_changed_model_ignores_the_old_cache(tmp_path: Path) -> None:
    model, cache = _linear(tmp_path / "m" / "model.onnx", 1.0), tmp_path / "cache"
    _serve(model, cache)
    _linear(model, 2.0)  # the model file changes in place
    y, state = _serve(model, cache)
    assert state == "miss"
    np.testing.assert_allclose(y, _expected(2.0), rtol=1e-6)
    assert len(list(cache.glob("*.onnx"))) == 2
    _, state = _serve(model, cache)
    assert state == "hit"


def test_new_weights_in_the_external_data_file_ignore_the_old_cache(tmp_path: Path) -> None:
    """`warmgate export-onnx` keeps the weights in model.onnx.data: the key must cover them."""
    model, cache = tmp_path / "m" / "model.onnx", tmp_path / "cache"

    def write(scale: float) -> None:
        one_file = _linear(tmp_path / "one-file" / "model.onnx", scale)
        model.parent.mkdir(exist_ok=True)
        model.with_name("model.onnx.data").unlink(missing_ok=True)  # onnx.save appends to it
        onnx.save(onnx.load(str(one_file)), str(model), save_as_external_data=True,
                  location="model.onnx.data", size_threshold=0)  # fmt: skip

    write(1.0)
    graph = model.read_bytes()
    assert _serve(model, cache)[1] == "miss"
    write(2.0)
    assert model.read_bytes() == graph  # only the data file changed
    y, state = _serve(model, cache)
    assert state == "miss"
    np.testing.assert_allclose(y, _expected(2.0), rtol=1e-6)
    y, state = _serve(model, cache)  # the entry finds its own weights, not the model's
    assert state == "hit"
    np.testing.assert_allclose(y, _expected(2.0), rtol=1e-6)


def test_unwritable_cache_still_serves(tmp_path: Path) -> None:
    model = _linear(tmp_path / "m" / "model.onnx", 1.0)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache directory should be")
    y, state = _serve(model, blocker / "cache")
    assert state == "off"
    np.testing.assert_allclose(y, _expected(1.0), rtol=1e-6)


@pytest.mark.parametrize("prepacking", [True, False])
@pytest.mark.parametrize("arena", list(Arena))
def test_every_arena_policy_computes_the_same(tmp_path: Path, arena: Arena, prepacking: bool) -> None:
    """Every arena policy, with ORT's pre-packed weight copies or without them
    (``--no-ort-prepacking``), gives the linear model's exact result as shapes grow and shrink."""
    settings = OrtSettings(threads=1, arena=arena, prepacking=prepacking)
    session = open_session(_linear(tmp_path / "model.onnx", 1.0), "cpu", settings)
    for rows in (1, 64, 2):  # grow, then shrink back
        x = np.ones((rows, 4), np.float32)
        (y,) = session.run(["y"], {"x": x})
        np.testing.assert_allclose(y, x @ onnx_models.WEIGHT + onnx_models.BIAS, rtol=1e-6)


_RSS_AFTER_BIG_RUN = """
import sys
from pathlib import Path
import numpy as np
from warmgate.config import Arena
from warmgate.models.memory import rss_bytes
from warmgate.models.ort_session import OrtSettings, open_session
session = open_session(Path(sys.argv[1]), "cpu", OrtSettings(threads=1, arena=Arena(sys.argv[2])))
x = np.ones((1, 4), np.float32)
session.run(["y"], {"x": x})
before = rss_bytes()
big = np.ones((4_000_000, 4), np.float32)  # 64 MB in, 48 MB out
session.run(["y"], {"x": big})
del big
session.run(["y"], {"x": x})
print((rss_bytes() - before) // 2**20)
"""


@pytest.mark.parametrize(("arena", "at_most_mb", "at_least_mb"), [("shrink", 16, 0), ("default", None, 32)])
def test_memory_of_a_big_run_goes_back_to_the_kernel(
    tmp_path: Path, arena: str, at_most_mb: int | None, at_least_mb: int
) -> None:
    """With the arena shrinking, a big shape's buffers are freed to the kernel after the run;
    ORT's default arena keeps them (the contrast shows the measurement can see it)."""
    model = _linear(tmp_path / "model.onnx", 1.0)
    code = [sys.executable, "-c", _RSS_AFTER_BIG_RUN, str(model), arena]
    grown = int(subprocess.run(code, capture_output=True, text=True, check=True).stdout)
    assert grown >= at_least_mb
    if at_most_mb is not None:
        assert grown <= at_most_mb


_ANON_AFTER_LOOKUP = """
import sys
from pathlib import Path
import numpy as np
from warmgate.models.ort_session import OrtSettings, open_session

def anon_mb():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) // 1024

import onnxruntime  # noqa: F401 - its own import is not what is measured
before = anon_mb()
session = open_session(Path(sys.argv[1]), "cpu", OrtSettings(threads=1))
(rows,) = session.run(["rows"], {"ids": np.array([3, 5000, 9999], np.int64)})
assert rows.shape == (3, 512) and float(rows[1, 0]) == 5000.0, rows[:, :2]
print(anon_mb() - before)
"""


def _lookup_table(path: Path, external: bool) -> Path:
    """``rows = table[ids]``: a 10000 × 512 float32 table (20 MB), row i filled with i."""
    from onnx import TensorProto, helper

    table = np.repeat(np.arange(10_000, dtype=np.float32)[:, None], 512, axis=1)
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "ids"], ["rows"])],
        "lookup",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["n"])],
        [helper.make_tensor_value_info("rows", TensorProto.FLOAT, ["n", 512])],
        initializer=[numpy_helper.from_array(table, "table")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path), save_as_external_data=external, location=f"{path.name}.data")
    return path


@pytest.mark.parametrize(("external", "at_most_mb", "at_least_mb"), [(True, 8, 0), (False, None, 16)])
def test_weights_in_an_external_data_file_stay_off_the_heap(
    tmp_path: Path, external: bool, at_most_mb: int | None, at_least_mb: int
) -> None:
    """Weights in ``model.onnx.data`` (what `warmgate export-onnx` writes) are memory-mapped by
    ONNX Runtime, not copied onto the heap: a lookup reads in only the pages it touches. A
    one-file graph's 20 MB table is copied (the contrast shows the measurement can see it)."""
    model = _lookup_table(tmp_path / "model.onnx", external)
    code = [sys.executable, "-c", _ANON_AFTER_LOOKUP, str(model)]
    grown = int(subprocess.run(code, capture_output=True, text=True, check=True).stdout)
    assert grown >= at_least_mb
    if at_most_mb is not None:
        assert grown <= at_most_mb


_FLUSHED = """
import sys
from pathlib import Path
import numpy as np
from warmgate.models.ort_session import OrtSettings, open_session
settings = OrtSettings(threads=2, denormal_as_zero=sys.argv[2] == "1")
(y,) = open_session(Path(sys.argv[1]), "cpu", settings).run(["y"], {"x": np.full(1 << 20, 1e-20, np.float32)})
print(float((y == 0).mean()), float(y.max()))
"""


def _tiny_mul(tmp_path: Path) -> Path:
    """``y = x * 1e-20``: with x = 1e-20 every output is 1e-40, a denormal."""
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Mul", ["x", "s"], ["y"])],
        "tiny",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n"])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["n"])],
        initializer=[numpy_helper.from_array(np.array(1e-20, dtype=np.float32), "s")],
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "tiny.onnx"))
    return tmp_path / "tiny.onnx"


@pytest.mark.parametrize("flush", [True, False])
def test_denormal_as_zero_flushes_the_denormals_a_run_produces(tmp_path: Path, flush: bool) -> None:
    """With ``denormal_as_zero`` the run flushes every denormal to zero; without, every element
    keeps it. Each in a fresh process: ORT sets the flag on the threads it touches, and it stays
    set on them."""
    argv = [sys.executable, "-c", _FLUSHED, str(_tiny_mul(tmp_path)), "1" if flush else "0"]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    flushed, largest = map(float, out.split())
    assert (flushed, largest) == ((1.0, 0.0) if flush else (0.0, pytest.approx(1e-40, rel=0.01)))


_ON_EVERY_WORKER = """
import asyncio, sys, threading
from pathlib import Path
import numpy as np
from warmgate.models.ort_session import OrtSettings, open_session
from warmgate.server.inference import InferenceWorkers
settings = OrtSettings(threads=1, denormal_as_zero=True, instances=2)
both = threading.Barrier(2, timeout=10)

def run(session):
    both.wait()  # one run on each worker, at once
    (y,) = session.run(["y"], {"x": np.full(1 << 16, 1e-20, np.float32)})
    return float((y == 0).mean())

async def main():
    workers = InferenceWorkers(niceness=0)
    session = await workers.run_now(open_session, Path(sys.argv[1]), "cpu", settings)
    if sys.argv[2] == "grow":
        await workers.grow(session.instances)
    else:  # what grow avoids: a second worker started by the event loop's thread
        workers._start_worker(first=False)
    flushed = await asyncio.gather(workers.run_now(run, session), workers.run_now(run, session))
    print(*sorted(flushed), session.instances)

asyncio.run(main())
"""


@pytest.mark.parametrize("start", ["grow", "from-the-loop"])
def test_every_instance_worker_flushes_denormals_when_grown_from_the_first(
    tmp_path: Path, start: str
) -> None:
    """One intra-op thread a run: each run executes on its worker. ORT sets flush-to-zero on
    the thread that opens the session (the first worker); ``grow`` starts the second from it, so
    it inherits the flags, and both runs flush. A worker started by the event loop's thread keeps
    denormals: the check that the test can fail. In a fresh process, whose main thread never
    opened a session."""
    argv = [sys.executable, "-c", _ON_EVERY_WORKER, str(_tiny_mul(tmp_path)), start]
    low, high, instances = subprocess.run(argv, check=True, capture_output=True, text=True).stdout.split()
    assert (float(low), float(high), int(instances)) == ((1.0, 1.0, 2) if start == "grow" else (0.0, 1.0, 2))
