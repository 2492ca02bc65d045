"""Benchmark: `check` at dataset scale. Its images/s against a bare ONNX Runtime loop, and its peak RSS by dataset size.

Models: random init (seed 0, recorded, so check rebuilds eager from it), exported as FP32 ONNX at 224x224 with a
1000-class head. Datasets: synthesised JPEGs (smooth random fields, which compress as photos do) in 10 class
folders named by the first 10 lines of a 1000-line labels file, so the 1000-way head fits.

1. Throughput, ConvNeXt-atto, `--images` 224x224 JPEGs. check's artifact pass is `gate.predict`, the loop
   `check` runs for each artifact: images read from disk and preprocessed on its thread pool while the session
   runs, top-1/top-k kept. The bare loop is `session.run` over the same images preprocessed into memory
   beforehand, in batches of the same size (padded as check pads them). Both run on one OrtRunner session (check's
   options and threads), in rounds whose order alternates, so drift and other load hit both; the figure is the
   median of the per-round ratios. Target: >= 0.85x. Then the CLI itself, in a child process: once cold (eager
   computed and cached) and once warm (eager read from the cache), its wall time against the bare loop as
   information: it adds Python and torch start-up, the model rebuild, hashing the dataset and session creation.
2. Peak RSS of one full cold `check` (eager streamed, computed and cached, then the ONNX streamed) on 200, 2,000
   and 10,000 small JPEGs (64x64, upscaled to the 224x224 input by the preprocessing), read with os.wait4 from the
   child's own rusage. The registry's smallest network (`test`) keeps the 10,000-image run to minutes; the input
   tensors the old check held (602 KB per image) do not depend on the network. Target: at 10,000 within 1.2x of
   that at 200.

    python bench/check_throughput.py [--images 400] [--rss-images 200,2000,10000] [--batch-size 8] [--rounds 6]

About 6 minutes on 2 uncontended cores at the defaults.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

THROUGHPUT_TARGET = 0.85  # check's pass / bare loop, images/s
RSS_TARGET = 1.2  # peak RSS at the largest size / at the smallest
CLASSES, FOLDERS = 1000, 10


def export(variant: str, workdir: Path) -> Path:
    """The variant, random init (seed 0, recorded so check rebuilds eager from it), as FP32 ONNX at 224x224."""
    import torch

    from convnext_export import create_model
    from convnext_export.export.trace import export_onnx

    torch.manual_seed(0)
    return export_onnx(create_model(variant), workdir / f"convnext_{variant}.fp32.onnx", image_size=224, seed=0)


def labels_file(workdir: Path) -> Path:
    path = workdir / "labels.txt"
    path.write_text("".join(f"c{i:04d}\n" for i in range(CLASSES)))
    return path


def synthesize(root: Path, count: int, size: int, seed: int) -> Path:
    """`count` JPEGs of size x size: random 8x8 colour fields upscaled bicubically, plus a little noise."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for i in range(count):
        folder = root / f"c{i % FOLDERS:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        field = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).resize((size, size), Image.BICUBIC)
        pixels = np.asarray(field, np.int16) + rng.integers(-12, 13, (size, size, 3))
        Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(folder / f"{i:05d}.jpg", quality=90)
    return root


def run_check(onnx: Path, dataset: Path, labels: Path, args: argparse.Namespace, env: dict, out: Path) -> dict:
    """One `convnext-export check` in a child process: wall time, peak RSS (its own rusage) and its JSON report."""
    command = [sys.executable, "-m", "convnext_export", "check", str(onnx), "--dataset", str(dataset)]
    command += ["--labels", str(labels), "--batch-size", str(args.batch_size), "--json", str(out), "--min-images", "1"]
    command += ["--workers", str(args.workers)] if args.workers else []
    start = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr = child.stderr.read().decode(errors="replace") if child.stderr else ""
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    child.returncode = code
    if code not in (0, 1):  # 1: a gate failed (random weights: near-ties may flip); the run itself completed
        raise SystemExit(f"check exited {code}: {stderr.strip()}")
    report = json.loads(out.read_text())
    figure = next(f for f in report["figures"] if f["name"] == onnx.name)
    eager = report["figures"][0]
    return {
        "wall": wall,
        "rss_mib": usage.ru_maxrss / 1024,  # Linux: KiB
        "pass_seconds": figure["seconds"],
        "eager_seconds": eager["seconds"],
        "eager_cached": report["eager_cache"]["hit"],
        "images": report["dataset"]["images"],
    }


def padded_batches(images: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """The preloaded images in batches of exactly `batch_size`, the last padded as check pads it."""
    batches = []
    for first in range(0, len(images), batch_size):
        batch = images[first : first + batch_size]
        if len(batch) < batch_size:
            batch = np.concatenate([batch, batch[np.arange(batch_size - len(batch)) % len(batch)]])
        batches.append(np.ascontiguousarray(batch))
    return batches


def bare_loop(session: object, name: str, batches: list[np.ndarray]) -> float:
    """Seconds of plain session.run over preloaded batches: the least a loop over these images can do."""
    run, start = session.run, time.perf_counter()  # type: ignore[attr-defined]
    for batch in batches:
        run(None, {name: batch})
    return time.perf_counter() - start


def compare_pass(onnx: Path, photos: Path, labels: Path, args: argparse.Namespace) -> tuple[list[float], list[float]]:
    """(bare loop images/s, check's pass images/s), one of each per round, on one session."""
    from convnext_export.data.datasets import load_dataset
    from convnext_export.data.preprocess import eval_config, preprocess_batch
    from convnext_export.evaluation.check.gate import predict
    from convnext_export.runners.ort_runner import OrtRunner

    dataset = load_dataset(photos, eval_config(224), labels_file=labels)
    batches = padded_batches(preprocess_batch(dataset.files, dataset.preprocess), args.batch_size)
    bare, ours = [], []
    with OrtRunner(onnx) as runner:
        bare_loop(runner._session, runner.input_name, batches[:2])  # shared warm-up
        for index in range(args.rounds):
            for side in ("bare", "check") if index % 2 == 0 else ("check", "bare"):
                if side == "bare":
                    bare.append(len(dataset) / bare_loop(runner._session, runner.input_name, batches))
                else:
                    ours.append(len(dataset) / predict(runner, dataset, args.batch_size, workers=args.workers).seconds)
            print(f"   round {index + 1}: bare loop {bare[-1]:.2f} images/s, check's pass {ours[-1]:.2f} images/s")
    return bare, ours


def verdict(ok: bool) -> str:
    return "PASS" if ok else "NOT MET"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=400, help="224x224 JPEGs for the throughput comparison")
    parser.add_argument("--rss-images", default="200,2000,10000", help="dataset sizes whose peak RSS is measured")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=None, help="check's preprocessing threads (default: cores)")
    parser.add_argument("--model", default="atto", help="variant timed for throughput")
    parser.add_argument("--rss-model", default="test", help="variant of the RSS runs (the registry's smallest)")
    parser.add_argument("--rounds", type=int, default=6, help="alternating rounds of bare loop and check's pass")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    sizes = [int(s) for s in args.rss_images.split(",")]
    began = time.perf_counter()

    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        env = os.environ | {"CONVNEXT_EXPORT_CACHE": str(workdir / "cache")}
        onnx, small_onnx, labels = export(args.model, workdir), export(args.rss_model, workdir), labels_file(workdir)
        start = time.perf_counter()
        photos = synthesize(workdir / "photos", args.images, 224, seed=0)
        small = {n: synthesize(workdir / f"small-{n}", n, 64, seed=n) for n in sizes}
        print(f"datasets synthesised in {time.perf_counter() - start:.1f} s; {os.cpu_count()} cores")

        print(f"\n1. throughput of {onnx.name}: {args.images} 224x224 JPEGs, batch {args.batch_size}")
        bare_rates, pass_rates = compare_pass(onnx, photos, labels, args)
        bare, ours = statistics.median(bare_rates), statistics.median(pass_rates)
        ratio = statistics.median(o / b for o, b in zip(pass_rates, bare_rates, strict=True))
        print(f"   bare ONNX Runtime loop: {bare:.2f} images/s (median of {args.rounds} rounds)")
        print(f"   check's artifact pass:  {ours:.2f} images/s -> {ratio:.3f}x the bare loop (median of round ratios)")
        print(f"   target >= {THROUGHPUT_TARGET}x the bare loop: {verdict(ratio >= THROUGHPUT_TARGET)}")
        cold = run_check(onnx, photos, labels, args, env, workdir / "cold.json")
        warm = run_check(onnx, photos, labels, args, env, workdir / "warm.json")
        assert warm["eager_cached"] and not cold["eager_cached"], "the rerun did not read eager from the cache"
        end_rate = args.images / warm["wall"]
        print(
            f"   the CLI, cold (eager computed in {cold['eager_seconds']:.1f} s): {cold['wall']:.1f} s; warm (eager "
            f"cached): {warm['wall']:.1f} s, of which the artifact pass {warm['pass_seconds']:.1f} s "
            f"({args.images / warm['pass_seconds']:.2f} images/s)"
        )
        print(
            f"   the CLI end to end, warm: {end_rate:.2f} images/s = {end_rate / bare:.3f}x the bare loop "
            f"(information: {warm['wall'] - warm['pass_seconds']:.1f} s of start-up included)"
        )

        print(
            f"\n2. peak RSS of a full cold check of {small_onnx.name} (eager and the ONNX both streamed), 64x64 JPEGs"
        )
        rss = {}
        for n in sizes:
            run = run_check(small_onnx, small[n], labels, args, env, workdir / f"rss-{n}.json")
            rss[n] = run["rss_mib"]
            print(
                f"   {n:>6} images: peak RSS {rss[n]:.0f} MiB ({run['wall']:.1f} s: eager "
                f"{run['eager_seconds']:.1f} s, ONNX {run['pass_seconds']:.1f} s)"
            )
        growth = rss[sizes[-1]] / rss[sizes[0]]
        print(
            f"   {sizes[-1]} / {sizes[0]} images: {growth:.3f}x; "
            f"target <= {RSS_TARGET}x: {verdict(growth <= RSS_TARGET)}"
        )
    print(f"\nbench runtime {time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
