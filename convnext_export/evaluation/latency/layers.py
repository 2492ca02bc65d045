"""Per-layer times: ONNX Runtime's own profiler (per node) and TensorRT's IProfiler (per layer), measured in a
separate session so the latency numbers never include profiling overhead."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from convnext_export import _deps
from convnext_export.errors import InvalidOptionError
from convnext_export.evaluation.latency.measure import batch_shape, seeded_input
from convnext_export.evaluation.latency.stats import LayerTime
from convnext_export.runners.backends import ORT_PROVIDERS
from convnext_export.runners.ort_runner import INPUT_DTYPES, session_options
from convnext_export.runners.trt_runner import TrtRunner
from convnext_export.trt.env import import_tensorrt


def layer_profile(path: Path, backend: str, batch: int, threads: int | None) -> list[LayerTime] | None:
    """Per-layer times where the backend has a profiler (ONNX Runtime, TensorRT); None for eager torch."""
    if backend in ORT_PROVIDERS:
        return layer_profile_ort(path, batch, threads, providers=ORT_PROVIDERS[backend])
    return layer_profile_trt(path, batch) if backend == "trt" else None


def _top_layers(totals_ms: dict[str, float], ops: dict[str, str], runs: int, top: int) -> list[LayerTime]:
    """The `top` slowest layers by mean ms per run, then one row for all the others: shares sum to 1."""
    grand = sum(totals_ms.values()) or 1.0
    ranked = sorted(totals_ms.items(), key=lambda item: item[1], reverse=True)
    rows = [LayerTime(name, ops.get(name, "-"), total / runs, total / grand) for name, total in ranked[:top]]
    rest = sum(total for _, total in ranked[top:])
    if len(ranked) > top:
        rows.append(LayerTime(f"({len(ranked) - top} other layers)", "-", rest / runs, rest / grand))
    return rows


def aggregate_ort_profile(events: list[dict[str, Any]], top: int = 15) -> list[LayerTime]:
    """Sum each node's `<node>_kernel_time` events from an ONNX Runtime profile, leaving out the first
    `model_run` (the warm-up); shares are of the summed kernel time (session overhead is not a node's)."""
    runs = sorted(
        (e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"), key=lambda e: e["ts"]
    )
    if len(runs) < 2:
        raise InvalidOptionError("the ONNX Runtime profile holds fewer than two runs: nothing after the warm-up")
    after = runs[0]["ts"] + runs[0]["dur"]
    totals: dict[str, float] = {}
    ops: dict[str, str] = {}
    for event in events:
        name = event.get("name", "")
        if event.get("cat") == "Node" and name.endswith("_kernel_time") and event["ts"] >= after:
            node = name.removesuffix("_kernel_time")
            totals[node] = totals.get(node, 0.0) + event["dur"] / 1e3  # microseconds -> ms
            ops[node] = event.get("args", {}).get("op_name", "-")
    return _top_layers(totals, ops, len(runs) - 1, top)


def layer_profile_ort(
    onnx_path: str | os.PathLike[str],
    batch: int,
    threads: int | None = None,
    iterations: int = 10,
    *,
    providers: Sequence[str] = ("CPUExecutionProvider",),
    top: int = 15,
) -> list[LayerTime]:
    """Per-node times from ONNX Runtime's own profiler (SessionOptions.enable_profiling), in a separate
    session so the latency numbers never include profiling overhead."""
    import json
    import tempfile

    ort = _deps.require("onnxruntime", "ONNX Runtime's per-node profile")

    options = session_options(ort, threads)
    with tempfile.TemporaryDirectory() as tmp:
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(tmp, "ort")
        session = ort.InferenceSession(os.fspath(onnx_path), sess_options=options, providers=list(providers))
        info = session.get_inputs()[0]
        shape = [batch, *(d if isinstance(d, int) else None for d in info.shape[1:])]
        if None in shape:
            raise InvalidOptionError(f"{os.fspath(onnx_path)!r} has a dynamic image size: cannot profile layers")
        feed = {info.name: seeded_input(shape).astype(INPUT_DTYPES.get(info.type, np.float32))}
        for _ in range(iterations + 1):  # the first run is the warm-up, dropped by aggregate_ort_profile
            session.run(None, feed)
        with open(session.end_profiling(), encoding="utf-8") as f:
            events = json.load(f)
    return aggregate_ort_profile(events, top)


def layer_profile_trt(
    engine_path: str | os.PathLike[str], batch: int, iterations: int = 10, *, top: int = 15
) -> list[LayerTime]:
    """Per-layer GPU times from a tensorrt.IProfiler on the runner's execution context. TensorRT reports each
    layer once per execution (execute_v2 / execute_async_v3) after it completes; it synchronizes between layers
    to do so, so read the shares, not the sum. Layer names are indices when the engine was built with
    ProfilingVerbosity NONE; op types are not reported ("-"). Runs without CUDA graphs, which hide the layers."""

    trt = import_tensorrt()

    class _LayerTimes(trt.IProfiler):  # the Python API asks subclasses to call IProfiler.__init__ explicitly
        def __init__(self) -> None:
            trt.IProfiler.__init__(self)
            self.totals: dict[str, float] = {}

        def report_layer_time(self, layer_name: str, ms: float) -> None:
            self.totals[layer_name] = self.totals.get(layer_name, 0.0) + ms

    with TrtRunner(engine_path, cuda_graph=False) as runner:
        batch_array = seeded_input(batch_shape(runner, batch))
        runner.infer(batch_array)  # warm-up and shape set-up, not profiled
        recorder = _LayerTimes()
        runner._context.profiler = recorder
        for _ in range(iterations):
            runner.infer(batch_array)
    return _top_layers(recorder.totals, {}, iterations, top)
