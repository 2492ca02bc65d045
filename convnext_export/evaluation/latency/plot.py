"""latency.png: median latency against batch size with the p90-p99 band, throughput on a second axis
(matplotlib's Agg canvas, no pyplot: no global backend switch, no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from convnext_export import _deps
from convnext_export._atomic import atomic_path
from convnext_export.evaluation.latency.stats import LatencyResult


def write_plot(results: Sequence[LatencyResult], target: Path) -> Path:
    """Median latency against batch size per artifact/backend, a p90-p99 band, throughput (dashed) on the
    right axis. Agg canvas, no pyplot: no global backend switch, no display needed."""
    _deps.require("matplotlib", "latency.png")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

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
