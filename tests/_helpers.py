"""Helpers shared by test modules in several folders: the digits build, the `check` command on an app of its
own, a cache of its own for fixtures wider than a module, and small hand-made ONNX graphs."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import onnx
import pytest
import torch
import typer
from click.testing import Result
from onnx import TensorProto, helper
from typer.testing import CliRunner

from convnext_export.cli.check_cmd import check
from convnext_export.model.reference import ModelRequest
from convnext_export.pipeline.build import build
from convnext_export.pipeline.request import BuildRequest
from convnext_export.pipeline.results import BuildResult
from tests._paths import DIGITS

# --- isolation ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh CONVNEXT_EXPORT_CACHE for the duration, for package- or session-scoped fixtures that fill the cache
    (tests get a fresh one each, module-scoped fixtures one per module: see tests/conftest.py)."""
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CONVNEXT_EXPORT_CACHE", str(cache))
        yield cache


# --- fully random networks ----------------------------------------------------------------------------------


LAYER_SCALE_NAMES = ("gamma", "layer_scale_parameter")  # ours (the official name), transformers'


def randomize_all_(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every parameter random values, in place, so that every block, norm and bias shows in the outputs:
    convolution and linear weights normal with std 1/sqrt(fan-in), biases normal (std 0.5), LayerNorm weights and
    layer-scale gammas uniform in [0.5, 1.5] (far from gamma's 1e-6 init and from 1), LayerNorm biases normal.
    Works on transformers' ConvNeXt too (its layer scale is `layer_scale_parameter`)."""
    generator = torch.Generator().manual_seed(seed)

    def normal(shape: torch.Size, std: float) -> torch.Tensor:
        return std * torch.randn(shape, generator=generator)

    def around_one(shape: torch.Size) -> torch.Tensor:
        return 0.5 + torch.rand(shape, generator=generator)

    with torch.no_grad():
        for module in model.modules():
            is_norm = "LayerNorm" in type(module).__name__
            for name, param in module.named_parameters(recurse=False):
                if name in LAYER_SCALE_NAMES or (is_norm and name == "weight"):
                    param.copy_(around_one(param.shape))
                elif name == "weight":
                    param.copy_(normal(param.shape, param[0].numel() ** -0.5))
                else:
                    param.copy_(normal(param.shape, 0.5))
    return model


# --- the digits build and the check command -----------------------------------------------------------------


def build_digits(
    tmp_path: Path, calib: Path = DIGITS / "calib", images: Path | None = DIGITS / "test", **kwargs: object
) -> BuildResult:
    """The trained digits model built as FP32 and INT8 (both targets) through the pipeline API, without profiling."""
    request = BuildRequest(
        ModelRequest(weights=str(DIGITS / "convnext_digits.safetensors")),
        output_dir=tmp_path,
        samples=4,
        batch_sizes=(8,),
        precisions=("fp32", "int8"),
        calib=calib,
        images=images,
        profile=False,
        **kwargs,
    )
    return build(request)


# `check` on an app of its own, so these tests do not depend on where the project's CLI registers it.
check_app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
check_app.command("check")(check)


@check_app.callback()
def _group() -> None:
    """Keep `check` a sub-command."""


def check_artifacts(*artifacts: Path) -> Result:
    """`check` of the artifacts on the digits test set, without a baseline."""
    args = ["check", "--dataset", str(DIGITS / "test"), "--artifacts", ",".join(str(a) for a in artifacts)]
    return CliRunner().invoke(check_app, args)


# --- ONNX files ----------------------------------------------------------------------------------------------


def export_test_onnx(path: Path, batch: int | None = None) -> Path:
    """The seeded 10-class `test` variant exported at 64x64 (dynamic batch unless `batch`)."""
    import torch

    from convnext_export import create_model
    from convnext_export.export.trace import export_onnx

    torch.manual_seed(0)
    return export_onnx(create_model("test", num_classes=10), path, image_size=64, batch=batch, seed=0)


# --- small hand-made ONNX graphs ------------------------------------------------------------------------------


def image_input(name: str = "x", shape: tuple[int | str | None, ...] = ("batch", 3, 8, 8)) -> onnx.ValueInfoProto:
    """A float graph input of `shape` (names for dynamic dimensions, None for unnamed ones)."""
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))


def onnx_model(
    nodes: list[onnx.NodeProto],
    *,
    inputs: list[onnx.ValueInfoProto] | None = None,
    outputs: list[onnx.ValueInfoProto] | None = None,
    initializers: tuple[onnx.TensorProto, ...] | list[onnx.TensorProto] = (),
    opset: int = 17,
    extra_opsets: tuple[tuple[str, int], ...] | list[tuple[str, int]] = (),
) -> onnx.ModelProto:
    """A one-graph model; the checker is skipped because some tests build deliberately odd models."""
    graph = helper.make_graph(
        nodes,
        "g",
        inputs if inputs is not None else [image_input()],
        outputs if outputs is not None else [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        list(initializers),
    )
    opsets = [helper.make_opsetid("", opset), *(helper.make_opsetid(d, v) for d, v in extra_opsets)]
    return helper.make_model(graph, opset_imports=opsets, producer_name="test")


def relu_model(opset: int = 17) -> onnx.ModelProto:
    """x -> Relu -> y."""
    return onnx_model([helper.make_node("Relu", ["x"], ["y"], name="relu")], opset=opset)


def qdq_model(zero_point: int = 0, zero_type: int = TensorProto.INT8, scale_input: bool = False) -> onnx.ModelProto:
    """x -> QuantizeLinear -> DequantizeLinear -> y, with a constant or a graph-input scale."""
    scale = helper.make_tensor("scale", TensorProto.FLOAT, [], [0.05])
    zero = helper.make_tensor("zero", zero_type, [], [zero_point])
    inputs = [image_input()] + ([helper.make_tensor_value_info("scale", TensorProto.FLOAT, [])] if scale_input else [])
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "scale", "zero"], ["q"], name="q"),
        helper.make_node("DequantizeLinear", ["q", "scale", "zero"], ["y"], name="dq"),
    ]
    return onnx_model(nodes, inputs=inputs, initializers=[zero] if scale_input else [scale, zero])
