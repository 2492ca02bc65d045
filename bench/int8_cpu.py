"""Benchmark: INT8 on ONNX Runtime CPU — our CPU INT8 artifact against FP32 and TensorRT-style INT8.

In one run: ConvNeXt-T (weights shaped like trained ones, as in bench/export_cpu.py) exported and
optimized to FP32; both INT8 artifacts quantized from 64 calibration images (crops of the committed
sample photographs), timed cold (no calibration cache); ONNX Runtime CPU latency of FP32, CPU INT8 and
TensorRT-style INT8 at batch 1 and 8 with a fixed thread count, interleaved in shuffled order; and the
digits reference's accuracy in each precision (the check that the speed is not bought with accuracy).

    python bench/int8_cpu.py [--threads 2] [--iterations 60] [--workdir DIR]

Targets: CPU INT8 <= 0.45x FP32 latency at batch 1; digits INT8 within 1 point of FP32; quantizing
ConvNeXt-T with 64 calibration images in under a minute.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from export_cpu import interleaved_latency, make_weights, sessions  # noqa: E402 - shared with that benchmark

TARGET_LATENCY_RATIO = 0.45
TARGET_QUANTIZE_SECONDS = 60.0
CALIBRATION_IMAGES = 64


def calibration_folder(workdir: Path) -> Path:
    """64 varied crops and flips of the committed sample photos: real image statistics, 64 distinct inputs."""
    from PIL import Image, ImageOps

    from convnext_export.data.preprocess import find_images, load_image

    out = workdir / "calib64"
    out.mkdir(exist_ok=True)
    photos = [load_image(p) for p in find_images(ROOT / "calibration" / "samples")]
    rng = np.random.default_rng(0)
    for i in range(CALIBRATION_IMAGES):
        photo = photos[i % len(photos)]
        w, h = photo.size
        side = int(min(w, h) * rng.uniform(0.5, 1.0))
        left, top = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
        crop = photo.crop((left, top, left + side, top + side)).resize((256, 256), Image.Resampling.BICUBIC)
        (ImageOps.mirror(crop) if i % 2 else crop).save(out / f"{i:03d}.jpg", quality=92)
    return out


def build_artifacts(workdir: Path) -> tuple[dict[str, Path], dict[str, float]]:
    from convnext_export import create_model
    from convnext_export.data.preprocess import eval_config
    from convnext_export.export.optimize import optimize_onnx
    from convnext_export.export.trace import export_onnx
    from convnext_export.precision.calibration import load_calibration_set
    from convnext_export.precision.int8 import quantize_int8

    fp32 = workdir / "tiny.fp32.onnx"
    optimize_onnx(export_onnx(create_model(weights=make_weights(workdir)), workdir / "tiny.raw.onnx"), fp32)
    paths, seconds = {"fp32": fp32}, {}
    start = time.perf_counter()
    calibration = load_calibration_set(calibration_folder(workdir), eval_config(224))
    seconds["read 64 calibration images"] = time.perf_counter() - start
    for target in ("cpu", "trt"):
        paths[f"int8-{target}"] = workdir / f"tiny.int8-{target}.onnx"
        start = time.perf_counter()
        report = quantize_int8(fp32, paths[f"int8-{target}"], calibration, target=target, cache_dir=workdir / "cache")
        state = "cached ranges" if report.calibration_cached else "calibration + quantization"
        seconds[f"int8-{target} ({state})"] = time.perf_counter() - start
    # the CPU settings of the other x86 class, timed here too: reduce_range must not cost speed on either kind
    paths[OTHER] = workdir / "tiny.int8-cpu-other.onnx"
    quantize_int8(fp32, paths[OTHER], calibration, target="cpu", cache_dir=workdir / "cache", isa=other_isa())
    return paths, seconds


OTHER = "int8-cpu (other x86 settings)"


def other_isa() -> str:
    from convnext_export.precision.cpu_isa import host_isa

    return "avx2" if host_isa() in ("avx512-vnni", "avx-vnni") else "avx512-vnni"


def digits_accuracy(workdir: Path) -> dict[str, float]:
    """Top-1 accuracy of the trained digits reference in each precision, on its held-out test split."""
    from convnext_export import create_model
    from convnext_export.data.preprocess import eval_config, find_images, preprocess_batch
    from convnext_export.export.optimize import optimize_onnx
    from convnext_export.export.trace import export_onnx
    from convnext_export.precision.calibration import load_calibration_set
    from convnext_export.precision.int8 import quantize_int8
    from convnext_export.runners import OrtRunner

    digits = ROOT / "tests" / "data" / "digits"
    fp32 = workdir / "digits.fp32.onnx"
    optimize_onnx(
        export_onnx(create_model(weights=digits / "convnext_digits.safetensors"), workdir / "d.raw.onnx"), fp32
    )
    calibration = load_calibration_set(digits / "calib", eval_config(32))
    paths = {"fp32": fp32}
    for target in ("cpu", "trt"):
        paths[f"int8-{target}"] = workdir / f"digits.int8-{target}.onnx"
        quantize_int8(fp32, paths[f"int8-{target}"], calibration, target=target, cache_dir=workdir / "cache")
    files = find_images(digits / "test")
    x, y = preprocess_batch(files, eval_config(32)), np.array([int(f.parent.name) for f in files])
    accuracy = {}
    for name, path in paths.items():
        with OrtRunner(path, emulate_qdq=name == "int8-trt") as runner:  # the TensorRT file as TensorRT computes it
            accuracy[name] = float(np.mean(runner.infer_all(x, 40)["logits"].argmax(1) == y))
    return accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=60)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-int8-"))
    workdir.mkdir(parents=True, exist_ok=True)
    from convnext_export.precision.cpu_isa import cpu_int8_settings, host_isa

    paths, seconds = build_artifacts(workdir)
    print(f"ConvNeXt-T, ONNX Runtime CPU, {args.threads} threads, interleaved; CPU int8 class {host_isa()}")
    print(f"int8-cpu settings here: {cpu_int8_settings(host_isa())}; other: {cpu_int8_settings(other_isa())}")
    for step, value in seconds.items():
        print(f"time: {step:45s} {value:6.1f} s")
    quantize_total = sum(seconds.values())
    verdict = "MET" if quantize_total <= TARGET_QUANTIZE_SECONDS else "NOT MET"
    print(
        f"target: 64 images + both INT8 artifacts in <= {TARGET_QUANTIZE_SECONDS:.0f} s: {verdict} "
        f"({quantize_total:.1f} s)"
    )
    medians = {}
    runs = sessions(paths, args.threads)  # one session per artifact, reused for every batch size
    for batch, iterations in ((1, args.iterations), (8, max(10, args.iterations // 4))):
        times = interleaved_latency(runs, batch, iterations)
        medians[batch] = {k: statistics.median(v) * 1000 for k, v in times.items()}
        for name, values in times.items():
            print(f"batch {batch} {name:9s} median {medians[batch][name]:8.2f} ms  min {min(values) * 1000:8.2f} ms")
        for name in ("int8-cpu", OTHER, "int8-trt"):
            print(f"ratio {name}/fp32 batch {batch}: {medians[batch][name] / medians[batch]['fp32']:.3f}")
    ratio = medians[1]["int8-cpu"] / medians[1]["fp32"]
    verdict = "MET" if ratio <= TARGET_LATENCY_RATIO else "NOT MET"
    print(f"target: CPU INT8 <= {TARGET_LATENCY_RATIO:.2f}x FP32 at batch 1: {verdict} ({ratio:.3f})")
    accuracy = digits_accuracy(workdir)
    for name, value in accuracy.items():
        print(f"digits accuracy {name:9s} {value:.4f} ({value - accuracy['fp32']:+.4f} vs fp32)")
    worst = min(accuracy["int8-cpu"], accuracy["int8-trt"]) - accuracy["fp32"]
    print(
        f"target: digits INT8 within 1 point of FP32: {'MET' if worst >= -0.01 else 'NOT MET'} "
        f"({worst * 100:+.2f} points)"
    )


if __name__ == "__main__":
    main()
