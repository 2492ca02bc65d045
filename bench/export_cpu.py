"""Benchmark: our optimized ConvNeXt-T ONNX against the peer pipeline, on ONNX Runtime CPU.

Peer: transformers' ConvNextForImageClassification with the same weights -> torch.onnx.export (its
defaults: the dynamo exporter in torch >= 2.9; the TorchScript exporter is measured too) -> onnxsim.
Ours: convnext_export.export_onnx -> convnext_export.optimize_onnx.

Measured in one run: export + optimize wall time and peak memory of each pipeline (each in its own child
process, so peak RSS is its own), then ONNX Runtime CPU latency at batch 1 and 8 with a fixed thread
count, interleaved (every round runs every graph once, in a shuffled order) so machine noise hits all
graphs alike, and the outputs of every graph against eager PyTorch. Prints ratios against the peer.

    python bench/export_cpu.py [--threads 2] [--iterations 60] [--workdir DIR]

Needs the dev extras (transformers, onnxscript for the dynamo exporter).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_RATIO = 0.90  # ours / peer median latency at batch 1
LAYER_SCALE = 0.1  # trained ConvNeXt-T layer scales are O(0.1); 1e-6 would hide every block


def make_weights(workdir: Path) -> Path:
    """A transformers ConvNeXt-T with seeded weights shaped like trained ones, saved once for every pipeline.

    transformers initialises every bias to 0 and every LayerNorm to the identity; onnxsim then deletes the
    zero-bias additions and merges identical tensors, which trained weights never allow. So biases,
    LayerNorm affines and layer scales are drawn non-trivial here, as in a real checkpoint.
    """
    import torch
    import transformers

    torch.manual_seed(0)
    config = transformers.ConvNextConfig(layer_scale_init_value=LAYER_SCALE, layer_norm_eps=1e-6)
    model = transformers.ConvNextForImageClassification(config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("bias"):
                param.normal_(0.0, 0.02)
            elif "layernorm" in name or "layer_scale" in name:
                param.mul_(1.0 + 0.1 * torch.randn_like(param))
    model.save_pretrained(workdir / "hf")
    return workdir / "hf"


def pipeline_ours(weights: Path, output: Path) -> None:
    from convnext_export import create_model
    from convnext_export.export.optimize import optimize_onnx
    from convnext_export.export.trace import export_onnx

    raw = export_onnx(create_model(weights=weights), output.with_suffix(".raw.onnx"))
    optimize_onnx(raw, output)


def pipeline_peer(weights: Path, output: Path, dynamo: bool) -> None:
    import contextlib
    import io

    import onnx
    import onnxsim
    import torch
    import transformers

    class Logits(torch.nn.Module):
        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
            return self.model(pixel_values).logits

    model = Logits(transformers.ConvNextForImageClassification.from_pretrained(weights).eval())
    example = torch.zeros(2, 3, 224, 224)
    raw = output.with_suffix(".raw.onnx")
    if dynamo:
        batch = torch.export.Dim("batch")
        torch.onnx.export(model, (example,), raw, dynamic_shapes=({0: batch},), input_names=["images"])
    else:
        axes = {"images": {0: "batch"}, "logits": {0: "batch"}}
        torch.onnx.export(
            model,
            (example,),
            raw,
            dynamo=False,
            opset_version=17,
            input_names=["images"],
            output_names=["logits"],
            dynamic_axes=axes,
        )
    with contextlib.redirect_stdout(io.StringIO()):
        simplified, ok = onnxsim.simplify(onnx.load(raw), check_n=3)
    assert ok, "onnxsim check failed"
    onnx.save(simplified, output)


PIPELINES = {
    "ours": lambda w, o: pipeline_ours(w, o),
    "peer-dynamo": lambda w, o: pipeline_peer(w, o, dynamo=True),
    "peer-torchscript": lambda w, o: pipeline_peer(w, o, dynamo=False),
}


def run_child(name: str, weights: Path, output: Path) -> dict:
    """Run one pipeline in a fresh process; return its wall time and peak RSS."""
    cmd = [sys.executable, __file__, "--child", name, "--weights", str(weights), "--output", str(output)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{name} pipeline failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def child_main(name: str, weights: Path, output: Path) -> None:
    import warnings

    warnings.filterwarnings("ignore")
    start = time.perf_counter()
    PIPELINES[name](weights, output)
    wall = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes
    print(json.dumps({"wall_s": wall, "peak_rss_mb": peak_mb}))


def sessions(paths: dict[str, Path], threads: int) -> dict:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    return {
        name: ort.InferenceSession(str(p), options, providers=["CPUExecutionProvider"]) for name, p in paths.items()
    }


def interleaved_latency(runs: dict, batch: int, iterations: int, warmup: int = 3) -> dict[str, list[float]]:
    import numpy as np

    x = np.random.default_rng(batch).standard_normal((batch, 3, 224, 224)).astype(np.float32)
    feeds = {name: {s.get_inputs()[0].name: x} for name, s in runs.items()}
    for name, session in runs.items():
        for _ in range(warmup):
            session.run(None, feeds[name])
    times: dict[str, list[float]] = {name: [] for name in runs}
    order = list(runs)
    for _ in range(iterations):
        random.shuffle(order)
        for name in order:
            start = time.perf_counter()
            runs[name].run(None, feeds[name])
            times[name].append(time.perf_counter() - start)
    return times


def accuracy(weights: Path, runs: dict) -> dict[str, dict]:
    """Each graph against eager transformers on the same seeded batch (FP32 tolerance: DESIGN.md 5)."""
    import numpy as np
    import torch
    import transformers

    from convnext_export.evaluation.validate import compare_outputs

    x = np.random.default_rng(7).standard_normal((4, 3, 224, 224)).astype(np.float32)
    with torch.no_grad():
        model = transformers.ConvNextForImageClassification.from_pretrained(weights).eval()
        eager = model(torch.from_numpy(x)).logits.numpy()
    return {
        name: compare_outputs(eager, s.run(None, {s.get_inputs()[0].name: x})[0], classification=True)
        for name, s in runs.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=60)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--child")
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    if args.child:
        child_main(args.child, args.weights, args.output)
        return
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-export-"))
    workdir.mkdir(parents=True, exist_ok=True)
    weights = make_weights(workdir)
    paths = {name: workdir / f"{name}.onnx" for name in PIPELINES}
    build = {name: run_child(name, weights, path) for name, path in paths.items()}
    runs = sessions(paths, args.threads)
    report(build, runs, weights, args)


def report(build: dict, runs: dict, weights: Path, args: argparse.Namespace) -> None:
    import onnx

    print(f"ConvNeXt-T, ONNX Runtime CPU, {args.threads} threads, {args.iterations} interleaved rounds per batch size")
    print(f"{'pipeline':18s} {'nodes':>6s} {'export+opt s':>12s} {'peak MB':>8s}")
    for name, stats in build.items():
        nodes = len(onnx.load(str(runs[name]._model_path)).graph.node)
        print(f"{name:18s} {nodes:6d} {stats['wall_s']:12.1f} {stats['peak_rss_mb']:8.0f}")
    medians = {}
    for batch, iterations in ((1, args.iterations), (8, max(10, args.iterations // 4))):
        times = interleaved_latency(runs, batch, iterations)
        medians[batch] = {name: statistics.median(t) * 1000 for name, t in times.items()}
        for name, t in times.items():
            q = statistics.quantiles(t, n=10)
            print(
                f"batch {batch} {name:18s} median {medians[batch][name]:8.2f} ms  p10 {q[0] * 1000:8.2f}  "
                f"p90 {q[-1] * 1000:8.2f}  (n={len(t)})"
            )
    for peer in ("peer-dynamo", "peer-torchscript"):
        for batch in (1, 8):
            print(f"ratio ours/{peer} batch {batch}: {medians[batch]['ours'] / medians[batch][peer]:.3f}")
    default_peer = medians[1]["ours"] / medians[1]["peer-dynamo"]
    verdict = "MET" if default_peer <= TARGET_RATIO else "NOT MET"
    print(
        f"target: ours <= {TARGET_RATIO:.2f}x the peer (torch.onnx.export defaults) at batch 1: {verdict} "
        f"({default_peer:.3f})"
    )
    print(
        f"build ratio ours/peer-dynamo: wall {build['ours']['wall_s'] / build['peer-dynamo']['wall_s']:.2f}, "
        f"peak memory {build['ours']['peak_rss_mb'] / build['peer-dynamo']['peak_rss_mb']:.2f}"
    )
    for name, metrics in accuracy(weights, runs).items():
        ok = metrics["cosine"] >= 0.99999 and metrics["max_abs_rel"] <= 1e-4 and metrics["top1_agreement"] == 1.0
        print(
            f"accuracy {name:18s} vs eager: cosine {metrics['cosine']:.7f}, max_abs_rel {metrics['max_abs_rel']:.2e}, "
            f"top-1 agreement {metrics['top1_agreement']:.2f} -> {'within' if ok else 'OUTSIDE'} FP32 tolerance"
        )


if __name__ == "__main__":
    main()
