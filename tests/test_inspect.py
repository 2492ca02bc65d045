"""`inspect`: ONNX facts, the TensorRT parser tables, the lint rules, and the command's exit codes."""

from __future__ import annotations

import json
import random
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import typer
from onnx import TensorProto, helper, numpy_helper
from typer.testing import CliRunner, Result

from convnext_export.cli.inspect_cmd import inspect as inspect_command
from convnext_export.errors import ConvNeXtExportError, UnknownNameError
from convnext_export.export.describe import inspect_onnx
from convnext_export.export.metadata import OnnxFileError
from convnext_export.trt.lint import Finding, lint_for_tensorrt
from convnext_export.trt.support import SUPPORT
from convnext_export.trt.versions import RELEASES, SPELLINGS, release_of

runner = CliRunner()


def _app() -> typer.Typer:
    """A stand-in for the real CLI, which registers the command elsewhere."""
    app = typer.Typer()
    app.command("inspect")(inspect_command)

    @app.callback()
    def _root() -> None:
        """Test app."""

    return app


def _run(*args: str) -> Result:
    return runner.invoke(_app(), ["inspect", *args])


def _image_input(name: str = "x", shape: tuple[int | str | None, ...] = ("batch", 3, 8, 8)) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))


def _model(
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
        inputs if inputs is not None else [_image_input()],
        outputs if outputs is not None else [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        list(initializers),
    )
    opsets = [helper.make_opsetid("", opset), *(helper.make_opsetid(d, v) for d, v in extra_opsets)]
    return helper.make_model(graph, opset_imports=opsets, producer_name="test")


def _codes(findings: list[Finding], severity: str | None = None) -> set[str]:
    return {f.code for f in findings if severity is None or f.severity == severity}


def _relu(opset: int = 17) -> onnx.ModelProto:
    return _model([helper.make_node("Relu", ["x"], ["y"], name="relu")], opset=opset)


def _qdq(zero_point: int = 0, zero_type: int = TensorProto.INT8, scale_input: bool = False) -> onnx.ModelProto:
    """x -> QuantizeLinear -> DequantizeLinear -> y, with a constant or a graph-input scale."""
    scale = helper.make_tensor("scale", TensorProto.FLOAT, [], [0.05])
    zero = helper.make_tensor("zero", zero_type, [], [zero_point])
    inputs = [_image_input()] + ([helper.make_tensor_value_info("scale", TensorProto.FLOAT, [])] if scale_input else [])
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "scale", "zero"], ["q"], name="q"),
        helper.make_node("DequantizeLinear", ["q", "scale", "zero"], ["y"], name="dq"),
    ]
    return _model(nodes, inputs=inputs, initializers=[zero] if scale_input else [scale, zero])


@pytest.fixture(scope="module")
def convnext_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test variant exported the way the project exports: opset 17, dynamic batch named "batch"."""
    import torch

    import convnext_export

    path = tmp_path_factory.mktemp("export") / "convnext_test.onnx"
    model = convnext_export.create_model("test", num_classes=10).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model,
            (torch.zeros(2, 3, 64, 64),),
            str(path),
            dynamo=False,
            opset_version=17,
            input_names=["images"],
            output_names=["logits"],
            dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}},
        )
    return path


# --- the parser tables -------------------------------------------------------------------------------------


def test_tables_cover_each_generation_with_the_documented_differences() -> None:
    assert tuple(SUPPORT) == RELEASES == ("8.5", "8.6", "10", "11")
    for generation, support in SUPPORT.items():
        assert {"Conv", "MatMul", "Gemm", "Erf", "Transpose", "ReduceMean"} <= support.supported, generation
        assert {"QLinearConv", "ConvInteger", "MatMulInteger"} <= support.unsupported, generation
        assert not support.supported & support.unsupported, generation
        assert ("LayerNormalization" in support.supported) == (generation != "8.5")
        assert ("Gelu" in support.supported) == (generation in ("10", "11"))
    assert [(s.opset_min, s.opset_max) for s in SUPPORT.values()] == [(7, 17), (7, 17), (9, 24), (9, 25)]
    assert "Swish" in SUPPORT["11"].supported - SUPPORT["10"].supported


@pytest.mark.parametrize(
    ("spelling", "generation"),
    [("8.5", "8.5"), ("8.6.1", "8.6"), ("10", "10"), ("10.x", "10"), ("10.3", "10"), ("10.13.3", "10"), ("11.x", "11")],
)
def test_version_spellings_map_to_generations(spelling: str, generation: str) -> None:
    assert release_of(spelling) == generation


def test_unknown_version_lists_valid_ones() -> None:
    assert "10.3" in SPELLINGS and "11.x" in SPELLINGS
    with pytest.raises(UnknownNameError, match=r"unknown TensorRT version '9'; valid: .*8\.5"):
        lint_for_tensorrt(_relu(), "9")


# --- inspection --------------------------------------------------------------------------------------------


def test_inspection_of_a_real_export(convnext_onnx: Path) -> None:
    facts = inspect_onnx(convnext_onnx)
    assert (facts.opset, facts.producer.split()[0]) == (17, "pytorch")
    assert facts.inputs == [{"name": "images", "dtype": "float32", "shape": ["batch", 3, 64, 64]}]
    assert facts.outputs == [{"name": "logits", "dtype": "float32", "shape": ["batch", 10]}]
    assert facts.op_histogram["LayerNormalization"] == 10
    assert facts.num_nodes == sum(facts.op_histogram.values())
    stored = onnx.load(str(convnext_onnx)).graph.initializer
    assert facts.num_parameters == sum(int(np.prod(t.dims)) for t in stored) > 0
    assert json.loads(json.dumps(facts.to_dict()))["inputs"][0]["shape"][0] == "batch"


def test_metadata_and_unnamed_dynamic_dims_are_read_back(tmp_path: Path) -> None:
    model = _model([helper.make_node("Relu", ["x"], ["y"])], inputs=[_image_input(shape=(None, 3, "h", 8))])
    helper.set_model_props(model, {"variant": "test", "classes": "10"})
    onnx.save(model, tmp_path / "m.onnx")
    facts = inspect_onnx(tmp_path / "m.onnx")
    assert facts.metadata == {"variant": "test", "classes": "10"}
    assert facts.inputs[0]["shape"] == [None, 3, "h", 8]


@pytest.mark.parametrize("content", [None, b"", random.Random(0).randbytes(4096)], ids=["missing", "empty", "random"])
def test_unreadable_files_are_one_line_user_errors(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "model.onnx"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(OnnxFileError) as caught:
        inspect_onnx(path)
    message = str(caught.value)
    assert isinstance(caught.value, ConvNeXtExportError) and caught.value.exit_code == 2
    assert str(path) in message and "\n" not in message


# --- lint rules --------------------------------------------------------------------------------------------


def test_real_export_builds_on_86_10_11_but_not_85(convnext_onnx: Path) -> None:
    for generation in ("8.6", "10", "11"):
        assert not _codes(lint_for_tensorrt(convnext_onnx, generation), "blocker"), generation
    blockers = [f for f in lint_for_tensorrt(convnext_onnx, "8.5") if f.severity == "blocker"]
    assert [f.code for f in blockers] == ["unsupported-op"]
    assert "LayerNormalization (10 nodes" in blockers[0].message and "--opset 13" in blockers[0].message
    assert "dynamic-batch" in _codes(lint_for_tensorrt(convnext_onnx, "10"), "info")


def test_findings_are_ordered_by_severity(convnext_onnx: Path) -> None:
    severities = [f.severity for f in lint_for_tensorrt(convnext_onnx, "8.5")]
    assert severities == sorted(severities, key=("blocker", "warning", "info").index)


def test_custom_domain_and_integer_quant_ops_are_blockers() -> None:
    custom = _model(
        [helper.make_node("FusedConv", ["x"], ["y"], domain="com.example")], extra_opsets=[("com.example", 1)]
    )
    finding = next(f for f in lint_for_tensorrt(custom, "10") if f.code == "custom-domain-op")
    assert finding.severity == "blocker" and "plugin" in finding.message
    inputs = ["x", "s", "z", "w", "ws", "wz", "ys", "yz"]
    qlinear = _model([helper.make_node("QLinearConv", inputs, ["y"], name="qconv")])
    finding = next(f for f in lint_for_tensorrt(qlinear, "11") if f.code == "unsupported-op")
    assert finding.node == "qconv" and "QuantizeLinear/DequantizeLinear" in finding.message


def test_opset_range_per_generation() -> None:
    assert "opset-too-high" in _codes(lint_for_tensorrt(_relu(opset=18), "8.5"), "blocker")
    assert not _codes(lint_for_tensorrt(_relu(opset=18), "10"), "blocker")
    assert "opset-too-low" in _codes(lint_for_tensorrt(_relu(opset=8), "10"), "blocker")
    assert "opset-needs-newer-release" in _codes(lint_for_tensorrt(_relu(opset=22), "10"), "info")


def test_gelu_needs_trt_10() -> None:
    model = _model([helper.make_node("Gelu", ["x"], ["y"], name="gelu")], opset=20)
    assert {"opset-too-high", "unsupported-op"} <= _codes(lint_for_tensorrt(model, "8.6"), "blocker")
    assert not _codes(lint_for_tensorrt(model, "10"), "blocker")


def test_local_functions_need_trt_9_and_newer_ops_are_flagged() -> None:
    body = helper.make_function("local", "MyRelu", ["a"], ["b"], [helper.make_node("Relu", ["a"], ["b"])], [])
    model = _model([helper.make_node("MyRelu", ["x"], ["y"], domain="local")], extra_opsets=[("local", 1)])
    model.functions.append(body)
    assert "local-function" in _codes(lint_for_tensorrt(model, "8.6"), "blocker")
    assert not _codes(lint_for_tensorrt(model, "10"), "blocker")
    swish = _model([helper.make_node("Swish", ["x"], ["y"])], opset=24)
    assert "unsupported-op" in _codes(lint_for_tensorrt(swish, "10"), "blocker")
    assert not _codes(lint_for_tensorrt(swish, "11"), "blocker")
    assert "strongly-typed" in _codes(lint_for_tensorrt(swish, "11"), "info")


def _int64_reshape(values: list[int]) -> onnx.ModelProto:
    shape = numpy_helper.from_array(np.array(values, dtype=np.int64), "shape")
    return _model([helper.make_node("Reshape", ["x", "shape"], ["y"])], initializers=[shape])


def test_int64_weights_warn_on_8x_and_block_when_out_of_int32_range() -> None:
    small = lint_for_tensorrt(_int64_reshape([-1, 192]), "8.6")
    assert "int64-weights" in _codes(small, "warning") and not _codes(small, "blocker")
    sentinel = lint_for_tensorrt(_int64_reshape([0, 2**63 - 1]), "8.6")
    assert not _codes(sentinel, "blocker")
    huge = lint_for_tensorrt(_int64_reshape([-1, 2**40]), "8.5")
    assert "int64-out-of-range" in _codes(huge, "blocker")
    assert not {"int64-weights", "int64-out-of-range"} & _codes(lint_for_tensorrt(_int64_reshape([-1, 2**40]), "10"))


def test_qdq_rules() -> None:
    for generation in RELEASES:
        assert not _codes(lint_for_tensorrt(_qdq(), generation), "blocker"), generation
        assert "qdq-zero-point-nonzero" in _codes(lint_for_tensorrt(_qdq(zero_point=3), generation), "blocker")
    assert "qdq-scale-not-constant" in _codes(lint_for_tensorrt(_qdq(scale_input=True), "8.6"), "blocker")
    assert not _codes(lint_for_tensorrt(_qdq(scale_input=True), "10"), "blocker")
    assert "qdq-uint8" in _codes(lint_for_tensorrt(_qdq(zero_type=TensorProto.UINT8), "8.5"), "blocker")
    assert "qdq-uint8" in _codes(lint_for_tensorrt(_qdq(zero_type=TensorProto.UINT8), "10"), "warning")


def test_int32_bias_dequantize_is_one_grouped_blocker() -> None:
    bias = [numpy_helper.from_array(np.array([1, 2], dtype=np.int32), f"b{i}") for i in range(3)]
    scale = helper.make_tensor("s", TensorProto.FLOAT, [], [0.1])
    nodes = [helper.make_node("DequantizeLinear", [f"b{i}", "s"], [f"f{i}"], name=f"dq{i}") for i in range(3)]
    nodes.append(helper.make_node("Sum", ["f0", "f1", "f2"], ["y"]))
    findings = lint_for_tensorrt(_model(nodes, inputs=[], initializers=[*bias, scale]), "10")
    [finding] = [f for f in findings if f.code == "qdq-unsupported-type"]
    assert finding.severity == "blocker" and finding.node == "dq0" and "(3 nodes)" in finding.message


def test_input_shapes_and_double_tensors() -> None:
    no_shape = _model([helper.make_node("Relu", ["x"], ["y"])], inputs=[helper.make_tensor_value_info("x", 1, None)])
    assert "input-no-shape" in _codes(lint_for_tensorrt(no_shape, "10"), "blocker")
    dynamic = _model([helper.make_node("Relu", ["x"], ["y"])], inputs=[_image_input(shape=("n", 3, "h", "w"))])
    assert [f.code for f in lint_for_tensorrt(dynamic, "10")].count("dynamic-dim") == 2
    double = _model(
        [helper.make_node("Cast", ["x"], ["y"], to=TensorProto.DOUBLE)],
        outputs=[helper.make_tensor_value_info("y", TensorProto.DOUBLE, None)],
    )
    assert "double-tensor" in _codes(lint_for_tensorrt(double, "8.5"), "warning")


def test_missing_external_data_is_a_blocker(tmp_path: Path) -> None:
    weight = numpy_helper.from_array(np.ones((64, 64), dtype=np.float32), "w")
    model = _model([helper.make_node("MatMul", ["x", "w"], ["y"])], initializers=[weight])
    onnx.save(model, tmp_path / "m.onnx", save_as_external_data=True, location="m.onnx.data", size_threshold=0)
    assert not _codes(lint_for_tensorrt(tmp_path / "m.onnx", "10"), "blocker")
    (tmp_path / "m.onnx.data").unlink()
    assert "external-data-missing" in _codes(lint_for_tensorrt(tmp_path / "m.onnx", "10"), "blocker")


# --- the command -------------------------------------------------------------------------------------------


def test_cli_prints_tables_and_exits_0_when_clean(convnext_onnx: Path) -> None:
    result = _run(str(convnext_onnx), "--trt", "10.x")
    assert result.exit_code == 0, result.output
    for text in ("[batch, 3, 64, 64]", "LayerNormalization", "pytorch", "no blockers"):
        assert text in result.stdout


def test_cli_exits_1_on_blockers(convnext_onnx: Path) -> None:
    result = _run(str(convnext_onnx), "--trt", "8.5")
    assert result.exit_code == 1, result.output
    assert "will not build" in result.stdout and "unsupported-op" in result.stdout


def test_cli_json_to_stdout_parses(convnext_onnx: Path, tmp_path: Path) -> None:
    result = _run(str(convnext_onnx), "--trt", "8.5", "--json", "-")
    report = json.loads(result.stdout)
    assert result.exit_code == 1 and report["blockers"] == 1 and report["tensorrt"] == "8.5"
    assert report["op_histogram"]["LayerNormalization"] == 10
    assert report["findings"][0]["code"] == "unsupported-op"
    assert _run(str(convnext_onnx), "--json", str(tmp_path / "r.json")).exit_code == 0
    assert json.loads((tmp_path / "r.json").read_text())["blockers"] == 0


@pytest.mark.parametrize("case", ["missing", "corrupt", "bad-version"])
def test_cli_user_errors_exit_2_with_one_line(tmp_path: Path, case: str) -> None:
    path = tmp_path / "model.onnx"
    if case != "missing":
        path.write_bytes(random.Random(1).randbytes(2048) if case == "corrupt" else _relu().SerializeToString())
    result = _run(str(path), *(["--trt", "7"] if case == "bad-version" else []))
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert ("TensorRT version" in lines[0]) if case == "bad-version" else (str(path) in lines[0])
