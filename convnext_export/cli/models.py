"""`variants` and `info`: what the model zoo holds and what one configured model looks like."""

from __future__ import annotations

from rich.markup import escape

from convnext_export.cli._console import stdout_console
from convnext_export.cli._errors import report_user_errors
from convnext_export.cli._report import emit_json, wants_table
from convnext_export.cli.options import Ema, ImageSize, JsonOutput, NumClasses, ResetHead, Variant, Weights
from convnext_export.model.variants import (
    VARIANTS,
    ModelConfig,
    count_macs,
    count_parameters,
    make_config,
    stage_shapes,
)


def _variant_row(cfg: ModelConfig) -> dict:
    from convnext_export.weights.pretrained import list_pretrained

    return {
        "name": cfg.name,
        "family": "isotropic" if cfg.isotropic else "hierarchical",
        "depths": list(cfg.depths),
        "dims": list(cfg.dims),
        "params": count_parameters(cfg),
        "gflops_224": count_macs(cfg, 224, 224) / 1e9,
        "pretrained": [w.tag for w in list_pretrained(cfg.name)],
    }


@report_user_errors
def variants(json_out: JsonOutput = None) -> None:
    """List the registered variants: depths, dims, parameters and GFLOPs at 224 with 1000 classes."""
    from rich.table import Table

    rows = [_variant_row(cfg) for cfg in VARIANTS.values()]
    table = Table(title="ConvNeXt variants (1000 classes, 224x224)")
    for column in ("variant", "family", "depths", "dims", "params", "GFLOPs", "pretrained"):
        table.add_column(column, justify="right" if column in ("params", "GFLOPs") else "left")
    for r in rows:
        cells = (r["name"], r["family"], r["depths"], r["dims"], f"{r['params'] / 1e6:.2f}M", f"{r['gflops_224']:.2f}")
        table.add_row(*(escape(str(c)) for c in cells), escape(", ".join(r["pretrained"]) or "-"))
    if wants_table(json_out):
        console = stdout_console()
        console.print(table)
        console.print("GFLOPs count multiply-accumulates of conv and linear layers, as the paper does.")
    emit_json(rows, json_out)


def _describe_output(cfg: ModelConfig) -> str:
    if cfg.features_only:
        shapes = stage_shapes(cfg, *cfg.image_size)
        return "stage maps " + ", ".join(f"(N, {c}, {h}, {w})" for c, h, w in shapes)
    if cfg.num_classes is None:
        return f"pooled features (N, {cfg.num_features})"
    return f"logits (N, {cfg.num_classes})"


def _describe_preprocessing(cfg: ModelConfig) -> str:
    from convnext_export.data.preprocess import eval_config

    pre = eval_config(cfg.image_size)
    h, w = pre.image_size
    if pre.warp:
        return f"resize to {h}x{w} ({pre.interpolation}), ImageNet mean/std"
    cover = f"resize ({pre.interpolation}) to cover {h}x{w} / crop_pct {pre.crop_pct:.3f}"
    return f"{cover}, centre crop {h}x{w}, ImageNet mean/std"


def model_summary(cfg: ModelConfig, weights_info: dict | None) -> dict:
    """Everything `info` prints, as data (also its --json output)."""
    h, w = cfg.image_size
    return {
        "variant": cfg.name,
        "family": "isotropic" if cfg.isotropic else "hierarchical",
        "depths": list(cfg.depths),
        "dims": list(cfg.dims),
        "patch_size": cfg.patch_size,
        "stride": cfg.stride,
        "layer_scale_init": cfg.layer_scale_init,
        "params": count_parameters(cfg),
        "gflops": count_macs(cfg, h, w) / 1e9,
        "input": f"images float32 (N, {cfg.in_channels}, {h}, {w}); H and W multiples of {cfg.stride}",
        "output": _describe_output(cfg),
        "preprocessing": _describe_preprocessing(cfg),
        "weights": weights_info,
    }


def _print_summary(summary: dict) -> None:
    from rich.table import Table

    table = Table(show_header=False, title=f"convnext_{summary['variant']}", title_justify="left")
    weights = summary["weights"]
    rows = [
        (
            "architecture",
            f"{summary['family']}, depths {summary['depths']}, dims {summary['dims']}, "
            f"patch {summary['patch_size']}, total stride {summary['stride']}",
        ),
        ("layer scale", f"{summary['layer_scale_init']:g}" if summary["layer_scale_init"] else "off"),
        ("parameters", f"{summary['params']:,} ({summary['params'] / 1e6:.2f}M)"),
        ("GFLOPs", f"{summary['gflops']:.2f} (multiply-accumulates)"),
        ("input", summary["input"]),
        ("output", summary["output"]),
        ("preprocessing", summary["preprocessing"]),
    ]
    if weights is None:
        rows.append(("weights", "none: random initialisation"))
    else:
        labels = weights["labels"]
        rows += [
            (
                "weights",
                f"{weights['path']} ({weights['format']} format"
                + (f", entry {weights['entry']!r})" if weights["entry"] else ")"),
            ),
            ("sha256", weights["sha256"]),
            ("class labels", f"{len(labels)} names from the checkpoint" if labels else "none in the checkpoint"),
        ]
    for key, value in rows:
        table.add_row(key, escape(str(value)))
    stdout_console().print(table)


@report_user_errors
def info(
    variant: Variant = None,
    weights: Weights = None,
    num_classes: NumClasses = None,
    image_size: ImageSize = None,
    reset_head: ResetHead = False,
    ema: Ema = False,
    json_out: JsonOutput = None,
) -> None:
    """Summarise one model: architecture, size, input and output, preprocessing and weights source."""
    options = {k: v for k, v in (("num_classes", num_classes), ("image_size", image_size)) if v is not None}
    if weights is None:
        cfg = make_config(variant or "tiny", **options)
        weights_info = None
    else:
        from convnext_export.model.factory import create_model

        model = create_model(variant, weights=weights, reset_head=reset_head, ema=ema, **options)
        cfg, weights_info = model.config, model.weights_info.to_dict()
    summary = model_summary(cfg, weights_info)
    if wants_table(json_out):
        _print_summary(summary)
    emit_json(summary, json_out)
