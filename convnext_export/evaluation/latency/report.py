"""Latency reports: latency.json (everything, with the system it ran on), latency.csv (one row per artifact,
backend and batch) and the plot; every file written atomically."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from convnext_export import _deps
from convnext_export._atomic import atomic_path
from convnext_export._deps import MissingDependencyError
from convnext_export.errors import ConvNeXtExportError
from convnext_export.evaluation.latency.plot import write_plot
from convnext_export.evaluation.latency.stats import PERCENTILE_METHOD, LatencyResult, Skipped
from convnext_export.provenance import library_versions
from convnext_export.runners.ort_runner import onnxruntime_build
from convnext_export.trt import cuda as cuda_runtime


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

    return {
        "cpu": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "threads": threads if threads is not None else "backend default",
        "gpu": _gpu_name(),
        "platform": platform.platform(),
        "versions": library_versions(),
        "onnxruntime": onnxruntime_build() if _deps.available("onnxruntime") else None,
    }


_STAT_COLUMNS = {name: f"{name}_ms" for name in ("median", "mean", "std", "min", "max", "p90", "p95", "p99")}


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

    with atomic_path(target) as tmp, tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(csv_row(r) for r in results)
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

    out = Path(out_dir)
    paths: dict[str, Path] = {}
    plot = "latency.png"
    if not results:
        plot = "not drawn: nothing was measured"
    else:
        try:
            paths["png"] = write_plot(results, out / "latency.png")
        except MissingDependencyError as exc:
            plot = f"not drawn: {exc}"
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
