"""Latency profiling: warm-up, timed iterations or a duration, robust statistics, per-layer times, reports.

Conventions (DESIGN.md section 5): every artifact/backend/batch is timed end to end with `time.perf_counter`
around `Runner.infer`, whose end is synchronous (its outputs are host NumPy arrays, so any GPU work and the
device->host copy are finished when it returns). Runners that also measure GPU compute alone (TensorRT's
`compute_only`, CUDA events with the input already on the device) get those samples reported apart, as
trtexec reports "GPU Compute Time" apart from end-to-end latency. CPU runs record their thread count.

Only numpy and the standard library load at import time; torch, onnxruntime, tensorrt and matplotlib are
imported where a backend or the plot needs them.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import ConvNeXtExportError, InvalidOptionError, UnknownNameError

if TYPE_CHECKING:
    from torch import nn

    from .runners import Runner

BACKENDS = ("torch", "torch-cuda", "ort-cpu", "ort-cuda", "ort-trt", "trt")
ENGINE_SUFFIXES = (".plan", ".engine")
PERCENTILE_METHOD = "linear"  # numpy's default: interpolates between the two closest ranks (Excel PERCENTILE.INC)
ORT_PROVIDERS = {
    "ort-cpu": ("CPUExecutionProvider",),
    "ort-cuda": ("CUDAExecutionProvider", "CPUExecutionProvider"),
    "ort-trt": ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"),
}


class BackendUnavailableError(ConvNeXtExportError):
    """A backend that cannot run this artifact on this machine: `profile_all` skips it and goes on."""


@dataclass(frozen=True)
class LatencyStats:
    """Latency statistics in milliseconds; percentiles by numpy's "linear" method, std with ddof=0."""

    median: float
    mean: float
    std: float
    min: float
    max: float
    p90: float
    p95: float
    p99: float
    throughput: float  # images per second: batch / mean latency
    iterations: int

    @classmethod
    def from_samples(cls, samples_s: Sequence[float], batch: int) -> LatencyStats:
        ms = np.asarray(samples_s, dtype=np.float64) * 1e3
        if ms.size == 0:
            raise InvalidOptionError("no timing samples: run at least one iteration")
        median, p90, p95, p99 = np.percentile(ms, [50, 90, 95, 99], method=PERCENTILE_METHOD)
        mean = float(ms.mean())
        return cls(
            median=float(median),
            mean=mean,
            std=float(ms.std()),
            min=float(ms.min()),
            max=float(ms.max()),
            p90=float(p90),
            p95=float(p95),
            p99=float(p99),
            throughput=batch * 1e3 / mean if mean > 0 else float("inf"),
            iterations=int(ms.size),
        )


@dataclass(frozen=True)
class LayerTime:
    """One node (ONNX Runtime) or layer (TensorRT): mean time per inference and its share of the total."""

    name: str
    op_type: str
    mean_ms: float
    share: float


@dataclass
class LatencyResult:
    """One artifact on one backend at one batch size."""

    artifact: str
    backend: str
    batch_size: int
    end_to_end: LatencyStats
    compute_only: LatencyStats | None = None  # GPU compute alone (CUDA events, input already on the device)
    threads: int | None = None  # None: the backend's default
    warmup: dict[str, float] = field(default_factory=dict)  # iterations and seconds actually spent warming up
    timed_seconds: float = 0.0
    layers: list[LayerTime] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Skipped:
    """A backend (batch_size None) or one batch size that was not measured, and why."""

    artifact: str
    backend: str
    batch_size: int | None
    reason: str


@dataclass
class ProfileRun:
    results: list[LatencyResult] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


# --- measuring ----------------------------------------------------------------------------------------------


def seeded_input(shape: Sequence[int], seed: int = 0) -> np.ndarray:
    """A fixed float32 batch: latency must not depend on which random numbers a run drew."""
    return np.random.default_rng(seed).standard_normal(tuple(shape), dtype=np.float32)


def batch_shape(runner: Runner, batch_size: int, image_size: tuple[int, int] | None = None) -> tuple[int, ...]:
    """(batch, C, H, W) from the artifact's static dims, else the eager model's config, else `image_size`."""
    dims = list(runner.input_shape or (None, None, None, None))[1:]
    config = getattr(getattr(runner, "model", None), "config", None)
    if config is not None:
        fallback = (config.in_channels, *config.image_size)
    else:
        fallback = (3, *image_size) if image_size else (None, None, None)
    dims = [d if isinstance(d, int) else f for d, f in zip(dims, fallback, strict=True)]
    if None in dims:
        raise InvalidOptionError(f"{runner.name}: the input size is dynamic; pass image_size")
    return (batch_size, *dims)


def _timed(
    call: Callable[[np.ndarray], object], batch: np.ndarray, count: int | None, seconds: float | None
) -> list[float]:
    """Per-call seconds: `count` calls, or calls until `seconds` have passed (at least one). Kept tight on
    purpose: between the two clock reads there is only the call; the list is preallocated for counts."""
    clock = time.perf_counter
    if seconds is None:
        samples = [0.0] * int(count or 0)
        for i in range(len(samples)):
            start = clock()
            call(batch)
            samples[i] = clock() - start
        return samples
    samples, deadline = [], clock() + seconds
    while True:
        start = clock()
        call(batch)
        end = clock()
        samples.append(end - start)
        if end >= deadline:
            return samples


def measure(
    runner: Runner,
    batch_size: int,
    *,
    warmup: int | None = 10,
    warmup_seconds: float | None = None,
    iterations: int | None = 100,
    duration: float | None = None,
    image_size: tuple[int, int] | None = None,
    seed: int = 0,
) -> LatencyResult:
    """Warm up (count, or `warmup_seconds` when given), then time `iterations` calls (or calls for `duration`
    seconds when given) of `runner.infer` on one seeded batch; plus `compute_only` samples if the runner has it.

    `infer` returns host NumPy arrays, so when it returns any GPU work and copies are done: perf_counter around
    it is end-to-end latency without an extra synchronize."""
    if duration is None and not iterations:
        raise InvalidOptionError("give a positive iteration count or a duration")
    batch = seeded_input(batch_shape(runner, batch_size, image_size), seed)
    started = time.perf_counter()
    warm = _timed(runner.infer, batch, warmup or 0, warmup_seconds)
    warmed = time.perf_counter()
    samples = _timed(runner.infer, batch, iterations, duration)
    timed_seconds = time.perf_counter() - warmed
    compute = getattr(runner, "compute_only", None)
    compute_stats = None
    if callable(compute):  # GPU ms per call (CUDA events): same number of calls as end to end
        gpu_ms = [compute(batch) for _ in samples]
        compute_stats = LatencyStats.from_samples([ms / 1e3 for ms in gpu_ms], batch_size)
    return LatencyResult(
        artifact=os.fspath(getattr(runner, "path", runner.name)),
        backend=runner.name,
        batch_size=batch_size,
        end_to_end=LatencyStats.from_samples(samples, batch_size),
        compute_only=compute_stats,
        threads=getattr(runner, "threads", None),
        warmup={"iterations": len(warm), "seconds": round(warmed - started, 6)},
        timed_seconds=round(timed_seconds, 6),
    )


# --- backends -----------------------------------------------------------------------------------------------


def _check_kind(path: Path, backend: str) -> None:
    is_engine = path.suffix.lower() in ENGINE_SUFFIXES
    if backend == "trt" and not is_engine:
        raise BackendUnavailableError(f"trt runs TensorRT engines ({', '.join(ENGINE_SUFFIXES)}), not {path.name}")
    if backend != "trt" and is_engine:
        raise BackendUnavailableError(f"{backend} runs ONNX files; {path.name} is a TensorRT engine (use trt)")


def _ort_runner(path: Path, backend: str, threads: int | None) -> Runner:
    import onnxruntime as ort

    from .runners import OrtRunner

    wanted = ORT_PROVIDERS[backend][0]
    available = ort.get_available_providers()
    if wanted not in available:
        raise BackendUnavailableError(
            f"{wanted} is not in this onnxruntime {ort.__version__} (available: {', '.join(available)})"
        )
    runner = OrtRunner(path, ORT_PROVIDERS[backend], threads, name=backend)
    if runner.providers[0] != wanted:  # ORT fell back (e.g. no GPU or CUDA libraries)
        runner.close()
        raise BackendUnavailableError(f"onnxruntime could not start {wanted} on this machine")
    return runner


def _torch_runner(source: Path | nn.Module, backend: str, threads: int | None) -> Runner:
    import torch

    from .runners import TorchRunner

    if backend == "torch-cuda" and not torch.cuda.is_available():
        raise BackendUnavailableError("torch reports no CUDA device here")
    if isinstance(source, Path):
        from .export import read_metadata
        from .optimize import load_model
        from .reference import reference_model

        metadata = read_metadata(load_model(source))
        if metadata is None:
            raise BackendUnavailableError(f"torch rebuilds the eager model from metadata; {source.name} has none")
        try:
            source = reference_model(metadata, None, None)
        except InvalidOptionError as exc:  # no weights file and no seed recorded: nothing to rebuild from
            raise BackendUnavailableError(f"cannot rebuild the eager model from {source.name}: {exc}") from None
    if threads is not None:
        torch.set_num_threads(threads)  # process-wide: torch has no per-module thread setting
    runner = TorchRunner(source, "cuda" if backend == "torch-cuda" else "cpu", name=backend)
    runner.threads = torch.get_num_threads() if backend == "torch" else None
    return runner


def _trt_runner(path: Path) -> Runner:
    from .cuda_runtime import CudaError
    from .engine_meta import EngineMismatchError
    from .runners.trt_runner import TensorRTUnavailableError, TrtRunner

    try:
        return TrtRunner(path)
    except (TensorRTUnavailableError, CudaError, EngineMismatchError) as exc:  # no GPU/TensorRT, or not this one
        raise BackendUnavailableError(str(exc)) from None


def backend_runner(artifact: str | os.PathLike[str] | nn.Module, backend: str, threads: int | None = None) -> Runner:
    """A runner for `backend` on `artifact` (an ONNX or engine path; an nn.Module for the torch backends).
    UnknownNameError for a name not in BACKENDS, BackendUnavailableError when it cannot run here."""
    check_backends([backend])
    if isinstance(artifact, (str, os.PathLike)):
        artifact = Path(artifact)
        _check_kind(artifact, backend)
    elif not backend.startswith("torch"):
        raise InvalidOptionError(f"{backend} needs an artifact path, not a {type(artifact).__name__}")
    if backend.startswith("torch"):
        return _torch_runner(artifact, backend, threads)
    if backend == "trt":
        return _trt_runner(artifact)
    return _ort_runner(artifact, backend, threads)


def check_backends(names: Sequence[str]) -> None:
    """UnknownNameError (with the valid names) for the first name that is not a backend."""
    for name in names:
        if name not in BACKENDS:
            raise UnknownNameError("backend", name, BACKENDS)


def default_backend(path: Path) -> str:
    return "trt" if path.suffix.lower() in ENGINE_SUFFIXES else "ort-cpu"


def batch_refusal(runner: Runner, batch_size: int) -> str | None:
    """Why `runner` cannot take `batch_size` (static batch, engine profile range), or None."""
    if runner.static_batch is not None and batch_size != runner.static_batch:
        return f"static batch {runner.static_batch}"
    low, high = getattr(runner, "batch_range", (1, batch_size))
    if not low <= batch_size <= high:
        return f"engine profile takes batch {low}..{high}"
    return None


def profile_all(
    artifacts: Sequence[str | os.PathLike[str]],
    backends: Sequence[str] | None,
    batch_sizes: Sequence[int],
    *,
    threads: int | None = None,
    layers: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
    **timing: Any,
) -> ProfileRun:
    """Every artifact x backend x batch size; unavailable backends and refused batch sizes are recorded as
    skipped, with the reason, and the rest still runs. `timing`: measure()'s warm-up/iteration keywords.
    `backends` None: ort-cpu for ONNX files, trt for engines. `progress(description, done, total)`."""
    check_backends(backends or ())
    plan = [(Path(a), b) for a in artifacts for b in (backends or [default_backend(Path(a))])]
    run, total = ProfileRun(), len(plan) * len(batch_sizes)
    for index, (path, backend) in enumerate(plan):
        done = index * len(batch_sizes)
        try:
            runner = backend_runner(path, backend, threads)
        except BackendUnavailableError as exc:
            run.skipped.append(Skipped(os.fspath(path), backend, None, str(exc)))
            continue
        with runner:
            measured = []
            for offset, batch in enumerate(batch_sizes):
                if progress:
                    progress(f"{path.name} {backend} batch {batch}", done + offset, total)
                measured += _measure_one(run, runner, path, backend, batch, timing)
        if layers:  # after closing the runner: its idle thread pool must not compete with the profiled session
            for result in measured:
                result.layers = layer_profile(path, backend, result.batch_size, threads)
    if progress:
        progress("done", total, total)
    return run


def _measure_one(
    run: ProfileRun, runner: Runner, path: Path, backend: str, batch: int, timing: dict[str, Any]
) -> list[LatencyResult]:
    refusal = batch_refusal(runner, batch)
    if refusal:
        run.skipped.append(Skipped(os.fspath(path), backend, batch, refusal))
        return []
    result = measure(runner, batch, **timing)
    result.artifact, result.backend = os.fspath(path), backend
    run.results.append(result)
    return [result]


def layer_profile(path: Path, backend: str, batch: int, threads: int | None) -> list[LayerTime] | None:
    """Per-layer times where the backend has a profiler (ONNX Runtime, TensorRT); None for eager torch."""
    if backend in ORT_PROVIDERS:
        return layer_profile_ort(path, batch, threads, providers=ORT_PROVIDERS[backend])
    return layer_profile_trt(path, batch) if backend == "trt" else None


# --- system -------------------------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _gpu_name() -> str | None:
    """The first GPU's name from cuda-python (cheap, torch-free), else torch; None where neither sees one."""
    try:
        from . import cuda_runtime

        if cuda_runtime.device_count() > 0:
            return cuda_runtime.device_properties(0)[0]
    except ConvNeXtExportError:
        pass
    try:
        import torch
    except ImportError:
        return None
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def system_info(threads: int | None = None) -> dict[str, Any]:
    """What the numbers depend on: CPU, cores, the thread count asked for, GPU, library versions."""
    from .manifest import library_versions

    return {
        "cpu": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "threads": threads if threads is not None else "backend default",
        "gpu": _gpu_name(),
        "platform": platform.platform(),
        "versions": library_versions(),
    }


# --- per layer ----------------------------------------------------------------------------------------------


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

    import onnxruntime as ort

    from .runners.ort_runner import _INPUT_DTYPES, _session_options

    options = _session_options(ort, threads)
    with tempfile.TemporaryDirectory() as tmp:
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(tmp, "ort")
        session = ort.InferenceSession(os.fspath(onnx_path), sess_options=options, providers=list(providers))
        info = session.get_inputs()[0]
        shape = [batch, *(d if isinstance(d, int) else None for d in info.shape[1:])]
        if None in shape:
            raise InvalidOptionError(f"{os.fspath(onnx_path)!r} has a dynamic image size: cannot profile layers")
        feed = {info.name: seeded_input(shape).astype(_INPUT_DTYPES.get(info.type, np.float32))}
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
    from .runners.trt_runner import TrtRunner, _import_tensorrt

    trt = _import_tensorrt()

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


# --- reports ------------------------------------------------------------------------------------------------

_STAT_COLUMNS = {name: f"{name}_ms" for name in ("median", "mean", "std", "min", "max", "p90", "p95", "p99")}
_STAT_COLUMNS.update(throughput="throughput_ips", iterations="iterations")
CSV_COLUMNS = (
    "artifact",
    "backend",
    "batch_size",
    "threads",
    "warmup_iterations",
    *_STAT_COLUMNS.values(),
    *(f"compute_{c}" for c in _STAT_COLUMNS.values()),
)


def csv_row(result: LatencyResult) -> dict[str, object]:
    row: dict[str, object] = {
        "artifact": result.artifact,
        "backend": result.backend,
        "batch_size": result.batch_size,
        "threads": "" if result.threads is None else result.threads,
        "warmup_iterations": result.warmup.get("iterations", ""),
    }
    for prefix, stats in (("", result.end_to_end), ("compute_", result.compute_only)):
        for name, column in _STAT_COLUMNS.items():
            row[prefix + column] = "" if stats is None else getattr(stats, name)
    return row


def _write_csv(results: Sequence[LatencyResult], target: Path) -> Path:
    import csv

    from ._atomic import atomic_path

    with atomic_path(target) as tmp, tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(csv_row(r) for r in results)
    return target


def write_plot(results: Sequence[LatencyResult], target: Path) -> Path:
    """Median latency against batch size per artifact/backend, a p90-p99 band, throughput (dashed) on the
    right axis. Agg canvas, no pyplot: no global backend switch, no display needed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ._atomic import atomic_path

    fig = Figure(figsize=(8, 5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    right = ax.twinx()
    series: dict[tuple[str, str], list[LatencyResult]] = {}
    for r in results:
        series.setdefault((Path(r.artifact).name, r.backend), []).append(r)
    for i, ((artifact, backend), rows) in enumerate(series.items()):
        rows.sort(key=lambda r: r.batch_size)
        x, stats, color = [r.batch_size for r in rows], [r.end_to_end for r in rows], f"C{i % 10}"
        ax.plot(x, [s.median for s in stats], "o-", color=color, label=f"{artifact} ({backend})")
        ax.fill_between(x, [s.p90 for s in stats], [s.p99 for s in stats], color=color, alpha=0.2)
        if len(x) == 1:  # a band needs two points: show the single p90-p99 range as a bar
            ax.vlines(x, stats[0].p90, stats[0].p99, color=color, alpha=0.4, linewidth=6)
        right.plot(x, [s.throughput for s in stats], "s--", color=color, alpha=0.6)
    batches = sorted({r.batch_size for r in results})
    if len(batches) > 1:
        ax.set_xscale("log", base=2)
    ax.set_xticks(batches, [str(b) for b in batches])
    ax.minorticks_off()
    ax.set(xlabel="batch size", ylabel="latency ms (median; band p90-p99)", title="latency and throughput")
    right.set_ylabel("throughput images/s (dashed)")
    ax.legend(loc="upper left", fontsize="small")
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return target


def write_reports(
    results: Sequence[LatencyResult],
    system: dict[str, Any],
    out_dir: str | os.PathLike[str],
    *,
    skipped: Sequence[Skipped] = (),
) -> dict[str, Path]:
    """latency.json (everything), latency.csv (one row per artifact/backend/batch), latency.png (when
    matplotlib is installed and something was measured; otherwise the JSON says why not). All atomic."""
    import json

    from ._atomic import atomic_path

    out = Path(out_dir)
    paths: dict[str, Path] = {}
    plot = "latency.png"
    if not results:
        plot = "not drawn: nothing was measured"
    else:
        try:
            paths["png"] = write_plot(results, out / "latency.png")
        except ImportError:
            plot = "not drawn: matplotlib is not installed (pip install matplotlib)"
    document = {
        "toolkit": "convnext-export",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "percentiles": f"numpy.percentile method={PERCENTILE_METHOD!r}; std ddof=0; times in ms",
        "system": system,
        "results": [r.to_dict() for r in results],
        "skipped": [asdict(s) for s in skipped],
        "plot": plot,
    }
    paths["json"] = out / "latency.json"
    with atomic_path(paths["json"]) as tmp:
        tmp.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
    paths["csv"] = _write_csv(results, out / "latency.csv")
    return paths
