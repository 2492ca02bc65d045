"""Benchmark: does the profiler add measurable overhead? `measure()` against a bare `session.run` loop.

ConvNeXt-T FP32 ONNX (export_onnx, random init), batch 1, ONNX Runtime CPU with a fixed thread count. Both
sides use the same InferenceSession (the OrtRunner's own, so the same session options, arena and thread
pool) and the same seeded input. Blocks alternate, profiler then bare, then bare then profiler, ..., so
drift (turbo, other load) hits both; each side's figure is the median of its block medians. Target: the
profiler's median within 3% of the bare loop's.

    python bench/profile_overhead.py [--threads 2] [--rounds 12] [--block 20] [--workdir DIR]

About 1.5 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

TARGET = 0.03  # |profiler / bare - 1|


def export_tiny(workdir: Path) -> Path:
    import torch

    from convnext_export import create_model
    from convnext_export.export.trace import export_onnx

    torch.manual_seed(0)
    return export_onnx(create_model("tiny"), workdir / "convnext_tiny.fp32.onnx", seed=0)


def bare_block(session: object, feed: dict, iterations: int) -> float:
    """Median ms of `iterations` plain session.run calls: the least a timing loop can do."""
    run, clock, samples = session.run, time.perf_counter, []
    for _ in range(iterations):
        start = clock()
        run(None, feed)
        samples.append(clock() - start)
    return statistics.median(samples) * 1e3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=12, help="each round: one block of each, order alternating")
    parser.add_argument("--block", type=int, default=20, help="iterations per block")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()

    from convnext_export.evaluation.latency.measure import measure, seeded_input
    from convnext_export.runners import OrtRunner

    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        started = time.perf_counter()
        onnx_path = export_tiny(workdir)
        print(f"exported {onnx_path.name} in {time.perf_counter() - started:.1f} s")
        with OrtRunner(onnx_path, threads=args.threads) as runner:
            session = runner._session  # the same session both sides time
            batch = seeded_input((1, *runner.input_shape[1:]))  # what measure() feeds (seed 0)
            feed = {runner.input_name: batch}
            bare_block(session, feed, args.warmup)  # shared warm-up; blocks below warm up nothing
            profiler, bare = [], []
            for index in range(args.rounds):
                order = ("profiler", "bare") if index % 2 == 0 else ("bare", "profiler")
                for side in order:
                    if side == "profiler":
                        result = measure(runner, 1, warmup=0, iterations=args.block)
                        profiler.append(result.end_to_end.median)
                    else:
                        bare.append(bare_block(session, feed, args.block))
                print(f"round {index + 1}/{args.rounds}: profiler {profiler[-1]:.3f} ms, bare {bare[-1]:.3f} ms")
    ours, base = statistics.median(profiler), statistics.median(bare)
    ratio = ours / base
    verdict = "MET" if abs(ratio - 1) <= TARGET else "NOT MET"
    print(f"ConvNeXt-T fp32, batch 1, ort-cpu, {args.threads} threads, {args.rounds} x {args.block} iterations each")
    print(f"profiler median {ours:.3f} ms | bare session.run median {base:.3f} ms | ratio {ratio:.4f}")
    print(f"target: within {TARGET:.0%} -> {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
