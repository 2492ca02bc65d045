"""Per-layer times: ONNX Runtime profiles aggregated, and the TensorRT profiler wired to the context."""

from __future__ import annotations

import types

import numpy as np
import pytest

from convnext_export.evaluation.latency.layers import aggregate_ort_profile, layer_profile_trt
from tests.evaluation.latency._helpers import FakeRunner


def _run_event(ts: int, dur: int) -> dict:
    return {"cat": "Session", "name": "model_run", "ts": ts, "dur": dur}


def _node_event(name: str, op: str, ts: int, dur: int) -> dict:
    return {"cat": "Node", "name": f"{name}_kernel_time", "ts": ts, "dur": dur, "args": {"op_name": op}}


def test_ort_profile_aggregation_drops_the_warmup_and_keeps_shares_summing_to_one() -> None:
    events = [_run_event(0, 100), _node_event("conv", "Conv", 10, 5000)]  # warm-up run: excluded
    for start in (200, 400):
        events += [_run_event(start, 100), _node_event("conv", "Conv", start + 1, 300)]
        events += [_node_event("gelu", "Gelu", start + 2, 100), _node_event("add", "Add", start + 3, 100)]
    rows = aggregate_ort_profile(events, top=1)
    assert (rows[0].name, rows[0].op_type) == ("conv", "Conv")
    assert rows[0].mean_ms == pytest.approx(0.3) and rows[0].share == pytest.approx(0.6)
    assert rows[1].name == "(2 other layers)" and rows[1].mean_ms == pytest.approx(0.2)
    assert sum(r.share for r in rows) == pytest.approx(1.0)


def test_trt_layer_profiler_attaches_to_the_context(monkeypatch: pytest.MonkeyPatch) -> None:
    """TensorRT cannot run here: a stand-in module checks the IProfiler wiring (warm-up unprofiled)."""
    from convnext_export.evaluation.latency import layers

    class IProfiler:
        def __init__(self) -> None:
            pass

    class StandIn(FakeRunner):
        def __init__(self, path: object, cuda_graph: bool) -> None:
            super().__init__()
            assert cuda_graph is False  # a CUDA graph hides the layers from the profiler
            self._context = types.SimpleNamespace(profiler=None)

        def _infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
            if self._context.profiler is not None:
                self._context.profiler.report_layer_time("conv", 3.0)
                self._context.profiler.report_layer_time("gelu", 1.0)
            return super()._infer(batch)

    monkeypatch.setattr(layers, "import_tensorrt", lambda: types.SimpleNamespace(IProfiler=IProfiler))
    monkeypatch.setattr(layers, "TrtRunner", StandIn)
    rows = layer_profile_trt("model.plan", 2, iterations=4)
    assert [(r.name, r.mean_ms, r.share) for r in rows] == [("conv", 3.0, 0.75), ("gelu", 1.0, 0.25)]
