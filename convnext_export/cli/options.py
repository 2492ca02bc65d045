"""Options shared by several commands, declared once as `Annotated` aliases."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

Variant = Annotated[
    str | None,
    typer.Option("--variant", help="Model variant (see `convnext-export variants`), e.g. tiny."),
]
Weights = Annotated[
    str | None,
    typer.Option(
        "--weights",
        "-w",
        help="Checkpoint (.pth/.pt/.bin/.safetensors), transformers directory, or pretrained tag (in1k, ...).",
    ),
]
NumClasses = Annotated[
    int | None,
    typer.Option("--num-classes", min=1, help="Classifier size; defaults to the checkpoint's or 1000."),
]
ResetHead = Annotated[
    bool,
    typer.Option(
        "--reset-head/--no-reset-head", help="Replace the checkpoint's classifier when --num-classes differs."
    ),
]
Ema = Annotated[bool, typer.Option("--ema/--no-ema", help="Load the EMA weights (model_ema) of a training checkpoint.")]
ImageSize = Annotated[
    str | None,
    typer.Option("--image-size", help="Input size: N or HxW (e.g. 224 or 192x256)."),
]
JsonOutput = Annotated[
    Path | None,
    typer.Option("--json", help="Also write the result as JSON to this file ('-' for stdout)."),
]
RandomInit = Annotated[
    bool,
    typer.Option(
        "--random-init/--no-random-init", help="Build without weights (untrained; outputs mean nothing). Seeded."
    ),
]
Seed = Annotated[int, typer.Option("--seed", help="Seed for random initialisation and random validation inputs.")]
Features = Annotated[bool, typer.Option("--features/--no-features", help="Export the four stage maps, not logits.")]
Batch = Annotated[str, typer.Option("--batch", help="The exported batch dimension: 'dynamic' or a fixed size N.")]
Opset = Annotated[int, typer.Option("--opset", help="ONNX opset: 17 (default), or 13 for TensorRT 8.5 / JetPack 5.")]
Optimize = Annotated[bool, typer.Option("--optimize/--no-optimize", help="Run the exact folds and onnxsim.")]
FoldNormalization = Annotated[
    bool,
    typer.Option(
        "--fold-normalization/--no-fold-normalization",
        help="Fold mean, std and the 1/255 scaling into the stem: the model takes 0-255 RGB (for DeepStream).",
    ),
]
Images = Annotated[
    Path | None,
    typer.Option("--images", help="Folder of real images to validate on (searched recursively)."),
]
Samples = Annotated[int, typer.Option("--samples", min=1, help="Number of seeded random validation inputs.")]
BatchSizes = Annotated[str, typer.Option("--batch-sizes", help="Batch sizes to run, comma-separated, e.g. 1,8.")]
Calib = Annotated[
    Path | None,
    typer.Option("--calib", help="Calibration images (folder, searched recursively) or .npy/.npz arrays."),
]
CalibSamples = Annotated[
    int | None, typer.Option("--calib-samples", min=1, help="Use N calibration samples (seeded); default all.")
]
EvalSamples = Annotated[
    int | None,
    typer.Option(
        "--eval-samples", min=1, help="Held-out images taken from --calib when --images is absent (default all)."
    ),
]
CalibMethod = Annotated[str, typer.Option("--calib-method", help="minmax, entropy or percentile.")]
AccuracyTarget = Annotated[
    str | None,
    typer.Option("--accuracy-target", help="e.g. top1-agreement=0.99 or cosine=0.995: keep sensitive layers in FP."),
]
MinBatch = Annotated[int, typer.Option("--min-batch", min=1, help="Engine optimization profile: smallest batch.")]
OptBatch = Annotated[int, typer.Option("--opt-batch", min=1, help="Engine optimization profile: batch tuned for.")]
MaxBatch = Annotated[int, typer.Option("--max-batch", min=1, help="Engine optimization profile: largest batch.")]
Workspace = Annotated[int, typer.Option("--workspace", min=1, help="TensorRT builder workspace in MiB.")]
OptLevel = Annotated[int | None, typer.Option("--opt-level", min=0, max=5, help="Builder optimization level 0-5.")]
TimingCache = Annotated[Path | None, typer.Option("--timing-cache", help="Timing cache file, reused across builds.")]
DlaCore = Annotated[int | None, typer.Option("--dla-core", min=0, help="Run on this DLA core (GPU fallback on).")]
VersionCompatible = Annotated[
    bool, typer.Option("--version-compatible/--no-version-compatible", help="Engine runs on newer TensorRT.")
]
HardwareCompatible = Annotated[
    bool, typer.Option("--hardware-compatible/--no-hardware-compatible", help="Engine runs on any Ampere+ GPU.")
]
Tf32 = Annotated[
    bool, typer.Option("--tf32/--no-tf32", help="Keep TF32 in FP32 engines (judged by the fp32-tf32 row).")
]
RequireEngine = Annotated[
    bool,
    typer.Option("--require-engine/--no-require-engine", help="Exit 3 when an engine could not be built here."),
]
Quantizer = Annotated[str, typer.Option(help="ort (ONNX Runtime) or modelopt (NVIDIA ModelOpt, if installed).")]
OutputFile = Annotated[
    Path | None, typer.Option("--output", "-o", help="The file to write (default: beside the input).")
]
OutputDir = Annotated[Path | None, typer.Option("--output-dir", help="The folder to write into.")]
Backend = Annotated[
    str,
    typer.Option(
        "--backend",
        help="auto (trt for engines, ort-cpu for ONNX), torch, torch-cuda, ort-cpu, ort-cuda, ort-trt, trt.",
    ),
]
Backends = Annotated[
    str | None,
    typer.Option(
        "--backends", help="Comma-separated: torch, torch-cuda, ort-cpu, ort-cuda, ort-trt, trt (default: auto)."
    ),
]
TrtVersion = Annotated[
    str | None,
    typer.Option(
        "--trt-version", help="TensorRT of the target for printed commands: 8.5, 8.6, 10.x, 11.x (default: 10)."
    ),
]

PublicKey = Annotated[
    Path | None,
    typer.Option(
        "--public-key",
        help="Also require manifest.json.sig, a signature of the manifest by this Ed25519 key (OpenSSH .pub or PEM).",
    ),
]
