"""`build`: every stage in one run (export -> optimize -> validate -> report), with progress shown."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from convnext_export.cli._console import stdout_console
from convnext_export.cli._errors import report_user_errors
from convnext_export.cli._progress import stage_progress
from convnext_export.cli._report import print_validation, verdict_markup
from convnext_export.cli.options import (
    AccuracyTarget,
    Batch,
    BatchSizes,
    Calib,
    CalibMethod,
    CalibSamples,
    DlaCore,
    Ema,
    EvalSamples,
    Features,
    FoldNormalization,
    HardwareCompatible,
    Images,
    ImageSize,
    MaxBatch,
    MinBatch,
    NumClasses,
    Opset,
    OptBatch,
    Optimize,
    OptLevel,
    PublicKey,
    Quantizer,
    RandomInit,
    RequireEngine,
    ResetHead,
    Samples,
    Seed,
    Tf32,
    TimingCache,
    TrtVersion,
    Variant,
    VersionCompatible,
    Weights,
    Workspace,
)

if TYPE_CHECKING:
    from convnext_export.pipeline.results import ArtifactResult, BuildResult

OutputDir = Annotated[
    Path | None, typer.Option("--output-dir", help="Build directory (default: artifacts/convnext_<variant>).")
]


@report_user_errors
def build(
    ctx: typer.Context,
    config: Annotated[
        Path | None, typer.Option("--config", help="Take the options from this TOML file (flags given here win).")
    ] = None,
    from_manifest: Annotated[
        Path | None,
        typer.Option("--from-manifest", help="Rebuild with the options a bundle's manifest.json records."),
    ] = None,
    variant: Variant = None,
    weights: Weights = None,
    random_init: RandomInit = False,
    seed: Seed = 0,
    num_classes: NumClasses = None,
    reset_head: ResetHead = False,
    ema: Ema = False,
    image_size: ImageSize = None,
    batch: Batch = "dynamic",
    opset: Opset = 17,
    features: Features = False,
    optimize: Optimize = True,
    fold_normalization: FoldNormalization = False,
    output_dir: OutputDir = None,
    images: Images = None,
    samples: Samples = 32,
    batch_sizes: BatchSizes = "1,8",
    fp16: Annotated[
        bool, typer.Option("--fp16/--no-fp16", help="Also make the FP16 ONNX (LayerNorm kept in FP32).")
    ] = False,
    int8: Annotated[
        bool, typer.Option("--int8/--no-int8", help="Also make both INT8 ONNX files (TensorRT Q/DQ, CPU).")
    ] = False,
    precision: Annotated[
        str | None,
        typer.Option(help="Precisions to make, comma-separated: fp16, int8 (both targets), int8-trt, int8-cpu."),
    ] = None,
    calib: Calib = None,
    calib_samples: CalibSamples = None,
    eval_samples: EvalSamples = None,
    calib_method: CalibMethod = "minmax",
    accuracy_target: AccuracyTarget = None,
    quantizer: Quantizer = "ort",
    onnx: Annotated[
        Path | None, typer.Option("--onnx", help="Build engines from this bundle ONNX (on the device).")
    ] = None,
    verify_bundle: Annotated[
        bool,
        typer.Option(
            "--verify-bundle/--no-verify-bundle",
            help="With --onnx: verify the bundle against its manifest first and refuse it when it fails "
            "(--no-verify-bundle builds anyway; the manifest records that verification was skipped).",
        ),
    ] = True,
    public_key: PublicKey = None,
    min_batch: MinBatch = 1,
    opt_batch: OptBatch = 1,
    max_batch: MaxBatch = 8,
    workspace: Workspace = 2048,
    opt_level: OptLevel = None,
    timing_cache: TimingCache = None,
    dla_core: DlaCore = None,
    version_compatible: VersionCompatible = False,
    hardware_compatible: HardwareCompatible = False,
    tf32: Tf32 = False,
    trt_version: TrtVersion = None,
    require_engine: RequireEngine = False,
    profile: Annotated[
        bool, typer.Option("--profile/--no-profile", help="End with a latency profile of every artifact.")
    ] = True,
    profile_iterations: Annotated[
        int, typer.Option("--profile-iterations", min=1, help="Timed runs per artifact and batch size.")
    ] = 20,
) -> None:
    """Model -> ONNX -> optimized ONNX -> [FP16, INT8] -> validation of each against eager PyTorch -> report.

    Options may come from a TOML file (--config) or a bundle's manifest (--from-manifest); flags given here win."""
    from convnext_export.errors import InvalidOptionError
    from convnext_export.pipeline.build import build as run_build
    from convnext_export.pipeline.config import request_from_options, requested_precisions
    from convnext_export.pipeline.ondevice import build_from_onnx

    options = build_options(ctx, config, from_manifest)
    wanted = requested_precisions(options["precision"], options["fp16"], options["int8"])
    if onnx is not None:  # on the device the precision ONNX files exist already: nothing to quantize
        options |= {"precision": None, "fp16": False, "int8": False}
    request = request_from_options(options)
    if onnx is None and (public_key is not None or not verify_bundle):
        raise InvalidOptionError("--public-key and --no-verify-bundle apply to a bundle's ONNX: use them with --onnx")
    with stage_progress() as step:
        if onnx is not None:
            result = build_from_onnx(
                onnx, wanted[1:], request, progress=step, verify=verify_bundle, public_key=public_key
            )
        else:
            result = run_build(request, progress=step)
    for artifact in [*result.artifacts, *result.engines]:
        if artifact.validation is not None:
            print_validation(artifact.validation)
    print_summary(result)
    print_deploy_notes(result)
    print_skipped_engines(result)
    if not result.passed:
        raise typer.Exit(1)
    if require_engine and result.skipped_engines:
        typer.echo(f"error: {len(result.skipped_engines)} engine(s) not built (--require-engine)", err=True)
        raise typer.Exit(3)


def print_deploy_notes(result: BuildResult) -> None:
    """What the DeepStream files cannot express, and the Polygraphy commands that check each engine on the device
    (also in report.json under "deploy")."""
    from rich.markup import escape

    console = stdout_console()
    for note in result.deploy_notes:
        console.print(escape(note), soft_wrap=True)


def print_skipped_engines(result: BuildResult) -> None:
    """One line per engine that this machine could not build, and the commands that build it on the target."""
    from rich.markup import escape

    console = stdout_console()
    for skip in result.skipped_engines:
        console.print(f"[yellow]engine skipped[/]: {escape(f'{skip.engine} from {skip.onnx}: {skip.reason}')}")
    if result.skipped_engines:
        console.print("build them on the target (in the bundle directory), with this CLI or trtexec:")
        for skip in result.skipped_engines:  # plain echo: Rich would wrap the commands and break copy-paste
            typer.echo(f"  {skip.ours}")
            typer.echo(f"  {skip.trtexec}")
        typer.echo(f"or run {result.output_dir / 'build_engine.sh'} there")


def build_options(ctx: typer.Context, config: Path | None, from_manifest: Path | None) -> dict:
    """`build`'s options: its defaults, under a build file's or a manifest's, under the flags given explicitly."""
    from convnext_export.errors import InvalidOptionError
    from convnext_export.pipeline.config import OPTIONS, read_build_file, read_manifest_options

    if config is not None and from_manifest is not None:
        raise InvalidOptionError("--config and --from-manifest exclude each other: give one")
    options = {name: value for name, value in ctx.params.items() if name in OPTIONS}
    if config is not None or from_manifest is not None:
        given = {name for name in options if ctx.get_parameter_source(name).name not in ("DEFAULT", "DEFAULT_MAP")}
        from_file = read_build_file(config) if config is not None else read_manifest_options(from_manifest)
        options |= {name: value for name, value in from_file.items() if name not in given}
    return options


def print_summary(result: BuildResult) -> None:
    from rich.markup import escape
    from rich.table import Table

    meta = result.metadata
    table = Table(title=escape(f"build of convnext_{meta.variant}"), show_header=False, title_justify="left")
    if result.random_init:
        weights = "[bold yellow]RANDOM INITIALISATION[/]: untrained weights, the outputs mean nothing"
    else:
        weights = escape(f"{meta.weights_source} ({meta.weights_format}, sha256 {meta.weights_sha256[:16]}...)")
    table.add_row("weights", weights)
    shape = f"images {list(meta.image_size)}, opset {meta.opset}, crop_pct {meta.preprocessing['crop_pct']:.3f}"
    table.add_row("input", escape(shape))
    if result.calibration is not None:
        cal = result.calibration
        used = f"{cal['used']} samples from {cal['source']} ({cal['skipped']} unreadable skipped)"
        table.add_row("calibration", escape(used))
    if result.evaluation:
        ev = result.evaluation
        table.add_row("evaluation", escape(f"{ev['images']} images from {ev['source']}: {ev['note']}"))
    for artifact in result.artifacts:
        size = artifact.path.stat().st_size / 1e6
        line = f"{escape(str(artifact.path))} ({size:.1f} MB) {escape(_detail(artifact))}"
        table.add_row(artifact.precision, f"{line} -> {verdict_markup(artifact.validation)}")
    for engine in result.engines:
        state = (
            "not validated here (no ONNX Runtime)" if engine.validation is None else verdict_markup(engine.validation)
        )
        table.add_row(engine.precision, f"{escape(str(engine.path))} -> {state}")
    for artifact, rows in _latency_by_artifact(result.latency).items():
        table.add_row("latency", escape(f"{artifact}: " + ", ".join(rows)))
    if result.deploy_files:
        names = ", ".join(path.name for path, _ in result.deploy_files)
        table.add_row("deploy", escape(f"{names} (docs/deploy.md; `bundle triton` for a Triton repository)"))
    table.add_row("manifest", escape(str(result.manifest_path)))
    stdout_console().print(table)


def _detail(artifact: ArtifactResult) -> str:
    details = artifact.details
    if "nodes_before" in details:
        folds = ", ".join(f"{f['name']}: {f['count']}" for f in details["folds"] if f["count"])
        return f"[nodes {details['nodes_before']} -> {details['nodes_after']}; {folds or 'no folds'}]"
    if "sensitivity" in details:
        kept = details["sensitivity"]["kept_in_float"]
        return f"[kept in float: {', '.join(kept) or 'none'}]"
    if "quantized_nodes" in details:
        cached = "cached calibration" if details["calibration_cached"] else "calibrated"
        return f"[{details['quantized_nodes']} layers int8, {details['method']}, {cached}]"
    if "fp32_nodes" in details:
        return f"[{len(details['fp32_nodes'])} LayerNorm nodes kept fp32]"
    return ""


def _latency_by_artifact(latency: list[dict]) -> dict[str, list[str]]:
    rows: dict[str, list[str]] = {}
    for r in latency:
        rows.setdefault(f"{r['artifact']} ({r['backend']})", []).append(
            f"batch {r['batch']} median {r['median_ms']:.2f} ms (p99 {r['p99_ms']:.2f})"
        )
    return rows
