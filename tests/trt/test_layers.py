"""The engine's layer information (trt.layers): the summary of an engine inspector JSON, the DLA placement the
builder logs, the file beside the engine, and the end-to-end path through the TensorRT stand-in.

The JSON below is written for these tests in the shape NVIDIA's inspector prints it: field names, layer types,
"Format/Datatype" strings and the Metadata separators are those of the engine graphs shipped with NVIDIA/TensorRT's
trt-engine-explorer (tools/experimental/trt-engine-explorer/examples/pytorch/resnet/A100/*/…engine.graph.json and
tests/inputs/, release/10.13; its parser.py for "[profile N]" names and the \\x1e/\\x1f Metadata separators) and of
the "Engine Inspector" section of the TensorRT developer guide. The builder log lines are TensorRT's DLA placement
report as trtexec prints it (8.x: "[GpuLayer] POOLING: /pool/GlobalAveragePool"; 10.x: "[GpuLayer] Conv_0").
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from convnext_export.trt.errors import EngineMetaError
from convnext_export.trt.layers import (
    describe_engine,
    engine_layers,
    layers_path,
    placement_from_log,
    precision_of,
    read_layer_information,
    summarize,
    summary_line,
    write_layer_information,
)

NORM_0 = "/stages.0/stages.0.0/norm/LayerNormalization"
NORM_1 = "/stages.1/stages.1.0/norm/LayerNormalization"
NORM_2 = "/stages.2/stages.2.0/norm/LayerNormalization"
NODE_ORDER = ["/stages.2/stages.2.0/dwconv/Conv", NORM_2, "/stages.2/stages.2.0/pwconv1/MatMul"]


def _tensor(name: str, fmt: str, dims: list[int]) -> dict:
    return {"Name": name, "Location": "Device", "Dimensions": dims, "Format/Datatype": fmt}


DETAILED = {
    "Layers": [
        {
            "Name": "Reformatting CopyNode for Input Tensor 0 to /stem/stem.0/Conv",
            "LayerType": "Reformat",
            "Inputs": [_tensor("images", "Row major linear FP32", [8, 3, 224, 224])],
            "Outputs": [
                _tensor("Reformatted images", "Channel major FP16 format where channel % 4 == 0", [8, 3, 224, 224])
            ],
            "ParameterType": "Reformat",
            "Origin": "REFORMAT",
            "TacticValue": "0x0000000000000000",
        },
        {
            "Name": "stem.0.weight + /stem/stem.0/QuantizeLinear + /stem/stem.0/Conv",
            "LayerType": "CaskConvolution",
            "Inputs": [
                _tensor("images_q", "Thirty-two wide channel vectorized row major Int8 format", [8, 3, 224, 224])
            ],
            "Outputs": [_tensor("/stem/stem.0/Conv_output_0", "Row major linear FP32", [8, 96, 56, 56])],
            "ParameterType": "Convolution",
            "Kernel": [4, 4],
            "Weights": {"Type": "Int8", "Count": 4608},
            "TacticName": "sm80_xmma_fprop_implicit_gemm_interleaved_i8i8_i8i32_f32_nchw_vect_c_32kcrs_vect_c_32",
            "TacticValue": "0xef01fb6e433afa50",
            "Metadata": "[ONNX Layer: /stem/stem.0/QuantizeLinear]\x1e[ONNX Layer: /stem/stem.0/Conv]",
        },
        {
            "Name": "stages.0.0.gamma",
            "LayerType": "Constant",
            "Inputs": [],
            "Outputs": [_tensor("stages.0.0.gamma", "Row major linear FP32", [96])],
            "ParameterType": "Constant",
            "TacticValue": "0x0000000000000000",
        },
        {
            "Name": NORM_0,
            "LayerType": "Normalization",
            "Inputs": [_tensor("/stages.0/x", "Row major linear FP32", [8, 56, 56, 96])],
            "Outputs": [_tensor("/stages.0/norm_out", "Row major linear FP32", [8, 56, 56, 96])],
            "TacticValue": "0x0000000000000001",
            "Metadata": f"[ONNX Layer: {NORM_0}]",
        },
        {
            "Name": "PWN(PWN(/stages.0/stages.0.0/act/Mul), /stages.0/stages.0.0/Add)",
            "LayerType": "PointWiseV2",
            "Inputs": [
                _tensor("/stages.0/mul_in", "Two wide channel vectorized row major FP16 format", [8, 384, 56, 56])
            ],
            "Outputs": [
                _tensor("/stages.0/add_out", "Two wide channel vectorized row major FP16 format", [8, 96, 56, 56])
            ],
            "ParameterType": "PointWise",
            "TacticValue": "0x0000000000000009",
        },
        {
            "Name": "__myl_ResMeaSubMulMeaAddSqrDivMulAdd_myl0_3",
            "LayerType": "kgen",
            "Inputs": [{"Name": "__tran7", "Dimensions": [8, 28, 28, 192], "Format/Datatype": "Half"}],
            "Outputs": [{"Name": "__myln_k_arg__bb1_4", "Dimensions": [8, 28, 28, 192], "Format/Datatype": "Half"}],
            "TacticName": "__myl_ResMeaSubMulMeaAddSqrDivMulAdd_0x7e5e6a2c41f4e0b1",
            "TacticValue": "0x0000000000000000",
            "Metadata": f"[ONNX Layer: {NORM_1}]\x1f[ONNX Layer: /stages.1/stages.1.0/Mul]",
        },
        {
            "Name": "{ForeignNode[/stages.2/stages.2.0/dwconv/Conv.../stages.2/stages.2.0/pwconv1/MatMul]}",
            "LayerType": "Myelin",
            "Inputs": [_tensor("/stages.2/in", "Row major linear FP16 format", [8, 192, 14, 14])],
            "Outputs": [_tensor("/stages.2/out", "Row major linear FP16 format", [8, 14, 14, 768])],
            "TacticValue": "0x0000000000000000",
        },
        {
            "Name": "Reformatting CopyNode for Output Tensor 0 to reshape_after_/head/fc/Gemm",
            "LayerType": "NoOp",
            "Inputs": [_tensor("/head/fc_out", "Row major linear FP16 format", [8, 1000, 1, 1])],
            "Outputs": [_tensor("logits_pre", "Row major linear FP16 format", [8, 1000])],
            "TacticValue": "0x0000000000000000",
        },
        {
            "Name": "/head/fc/Gemm [profile 1]",
            "LayerType": "CaskGemmConvolution",
            "Inputs": [_tensor("/head/in [profile 1]", "Row major linear FP16 format", [1, 768, 1, 1])],
            "Outputs": [_tensor("logits [profile 1]", "Row major linear FP32", [1, 1000])],
            "TacticValue": "0x00000000000003e8",
        },
    ],
    "Bindings": ["images", "logits"],
}
NAMES_ONLY = {"Layers": ["/stem/stem.0/Conv", "PWN(/stages.0/act/Mul, /stages.0/Add)"], "Bindings": ["images"]}


def test_precision_is_the_type_word_of_the_format() -> None:
    cases = {
        "Row major linear FP32": "FP32",
        "Thirty-two wide channel vectorized row major Int8 format": "INT8",
        "Channel major FP16 format where channel % 8 == 0": "FP16",
        "Channel major INT8 format where column stride % 32 == 0": "INT8",
        "Half": "FP16",
        "Float": "FP32",
        "Row major linear BFloat16 format": "BF16",
        "Row major linear FP8 format": "FP8",
        "Unknown format": None,
    }
    assert {fmt: precision_of({"Format/Datatype": fmt}) for fmt in cases} == cases


def test_summary_of_a_detailed_engine() -> None:
    summary = summarize(DETAILED, layer_norm_nodes=[NORM_0, NORM_1, NORM_2], node_order=NODE_ORDER)
    assert summary["detailed"] and summary["layers"] == 7  # the constant and the second profile's layer left out
    assert summary["precisions"] == {"FP16": 3, "INT8": 1, "FP32": 1} and summary["data_movement"] == 2
    assert summary["fused"] == 4  # conv + quantize, the PWN pair, the Myelin LayerNorm, the ForeignNode range
    assert summary["devices"] == {"GPU": 7} and summary["layers_on_dla"] == [] == summary["gpu_fallback_layers"]
    norm = summary["layer_norm"]
    assert (norm["nodes"], norm["found"], norm["precisions"], norm["devices"]) == (
        3,
        3,
        {"FP32": 1, "FP16": 2},
        {"GPU": 3},
    )
    assert [row["layer"] for row in norm["layers"]] == [
        NORM_0,
        "__myl_ResMeaSubMulMeaAddSqrDivMulAdd_myl0_3",
        "{ForeignNode[/stages.2/stages.2.0/dwconv/Conv.../stages.2/stages.2.0/pwconv1/MatMul]}",
    ]
    line = summary_line(summary)
    assert line.startswith("7 engine layers: 3 FP16, 1 INT8, 1 FP32 (2 reformats/copies, 4 fused)")
    assert "LayerNorm: 3 of 3 nodes in 3 layers, 2 FP16, 1 FP32 on GPU" in line


def test_layers_keep_their_tactic_nodes_and_kind() -> None:
    layers = {layer.name: layer for layer in engine_layers(DETAILED, node_order=NODE_ORDER)}
    conv = layers["stem.0.weight + /stem/stem.0/QuantizeLinear + /stem/stem.0/Conv"]
    assert (conv.kind, conv.precision, conv.moves_data) == ("CaskConvolution", "INT8", False)
    assert conv.tactic.startswith("sm80_xmma_fprop") and conv.nodes == (
        "/stem/stem.0/QuantizeLinear",
        "/stem/stem.0/Conv",
    )
    pointwise = layers["PWN(PWN(/stages.0/stages.0.0/act/Mul), /stages.0/stages.0.0/Add)"]
    assert pointwise.nodes == ("/stages.0/stages.0.0/act/Mul", "/stages.0/stages.0.0/Add")
    assert layers["Reformatting CopyNode for Input Tensor 0 to /stem/stem.0/Conv"].precision is None


def test_without_the_onnx_layer_norm_is_found_by_name() -> None:
    """inspect on an engine whose sidecar lists no LayerNorm nodes: names that say LayerNorm are taken."""
    norm = summarize(DETAILED)["layer_norm"]
    assert norm["found"] == 2 and norm["precisions"] == {"FP32": 1, "FP16": 1}  # the ForeignNode range is opaque


def test_an_engine_built_without_detailed_verbosity() -> None:
    summary = summarize(NAMES_ONLY)
    assert not summary["detailed"] and summary["layers"] == 2 and summary["precisions"] == {"unknown": 2}
    assert summary_line(summary) == (
        "2 engine layers (built without ProfilingVerbosity.DETAILED: no precisions recorded)"
    )


def test_dla_placement_comes_from_the_builders_report() -> None:
    log = [
        "---------- Layers Running on DLA ----------",
        "[DlaLayer] {ForeignNode[/cnn/cnn.0/Conv.../cnn/cnn.11/Relu]}",
        "---------- Layers Running on GPU ----------",
        "[GpuLayer] POOLING: /pool/GlobalAveragePool",
        "[GpuLayer] Conv_0",
        "some other INFO line",
    ]
    placement = placement_from_log(log)
    assert placement == {
        "{ForeignNode[/cnn/cnn.0/Conv.../cnn/cnn.11/Relu]}": "DLA",
        "/pool/GlobalAveragePool": "GPU",
        "Conv_0": "GPU",
    }
    information = {
        "Layers": [
            {"Name": "images to nvm", "LayerType": "Reformat", "Inputs": [], "Outputs": []},
            {
                "Name": "{ForeignNode[/cnn/cnn.0/Conv.../cnn/cnn.11/Relu]}",
                "LayerType": "ForeignNode",
                "Inputs": [_tensor("images", "Channel major FP16 format where channel % 16 == 0", [1, 3, 32, 32])],
                "Outputs": [],
            },
            {
                "Name": "/pool/GlobalAveragePool",
                "LayerType": "CaskPooling",
                "Inputs": [_tensor("x", "Row major linear FP16 format", [1, 64, 8, 8])],
                "Outputs": [],
            },
        ]
    }
    summary = summarize(information, placement=placement)
    assert summary["layers_on_dla"] == ["{ForeignNode[/cnn/cnn.0/Conv.../cnn/cnn.11/Relu]}"]
    assert summary["gpu_fallback_layers"] == ["/pool/GlobalAveragePool"]  # the DLA input copy is data movement
    assert summary["devices"] == {"GPU": 2, "DLA": 1}
    assert summary_line(summary).endswith("; DLA: 1 layers, 1 on the GPU")


def test_layer_information_file_beside_the_engine(tmp_path: Path) -> None:
    engine = tmp_path / "m.fp16.plan"
    assert layers_path(engine) == tmp_path / "m.fp16.plan.layers.json"
    with pytest.raises(EngineMetaError, match=r"has no layer information \(m.fp16.plan.layers.json\)"):
        read_layer_information(engine)
    write_layer_information(engine, DETAILED)
    assert read_layer_information(engine) == json.loads(json.dumps(DETAILED))
    layers_path(engine).write_text('{"Bindings": []}')
    with pytest.raises(EngineMetaError, match="is not TensorRT engine information"):
        read_layer_information(engine)
    layers_path(engine).write_text("{")
    with pytest.raises(EngineMetaError, match="is unreadable") as info:
        read_layer_information(engine)
    assert "\n" not in str(info.value)


def test_describe_an_engine_without_tensorrt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "tensorrt", None)
    engine = tmp_path / "m.plan"
    with pytest.raises(EngineMetaError, match="does not exist"):
        describe_engine(engine)
    engine.write_bytes(b"plan")
    with pytest.raises(EngineMetaError, match="has no layer information"):
        describe_engine(engine)
    write_layer_information(engine, DETAILED)
    facts = describe_engine(engine)
    assert facts["build"] is None and facts["layer_information"] == "m.plan.layers.json"
    assert facts["summary"]["layers"] == 7 and facts["line"] == summary_line(facts["summary"])


# --- end to end, on the TensorRT stand-in (what the stand-in builder reports; not an engine build) ----------------


@pytest.mark.parametrize(("release", "artifact"), [("8.6", "fp16"), ("10", "fp16"), ("11", "int8-trt")])
def test_standin_build_saves_and_summarises_the_inspector_json(
    install, onnx_files: dict, tmp_path: Path, release: str, artifact: str
) -> None:
    """The build sets ProfilingVerbosity.DETAILED, loads the engine it built, saves the inspector's JSON beside it
    and summarises it in the report and the sidecar; inspect reads the same summary back without TensorRT."""
    from convnext_export.trt.builder import build_engine
    from convnext_export.trt.sidecar import read_sidecar

    trt, _ = install(release)
    engine = tmp_path / f"m.{artifact}.plan"
    report = build_engine(onnx_files[artifact], engine)
    assert ("config.profiling_verbosity", trt.ProfilingVerbosity.DETAILED) in trt.events
    assert report.layer_info_path == layers_path(engine) and read_layer_information(engine)["Bindings"]
    summary = report.layer_summary
    assert summary["detailed"] and summary == read_sidecar(engine)["layers"]
    norm = summary["layer_norm"]
    assert norm["nodes"] == norm["found"] == len(norm["layers"]) > 0  # every LayerNorm node found in a layer
    if release == "8.6":  # pinned to FP32 on the weakly typed path; the rest runs FP16 under the FP16 flag
        assert norm["precisions"] == {"FP32": norm["found"]} and "FP16" in summary["precisions"]
    else:  # strongly typed: the file's types (the int8-trt test file is the FP32 graph, relabelled)
        assert set(summary["precisions"]) <= {"FP16", "FP32"}
    install(release)
    facts = describe_engine(engine)
    assert facts["summary"] == summary and facts["build"]["precision"] == artifact


def test_standin_inspect_reads_the_engine_itself_when_the_file_is_missing(
    install, onnx_files: dict, tmp_path: Path
) -> None:
    from convnext_export.trt.builder import build_engine

    install("10")
    engine = tmp_path / "m.fp16.plan"
    summary = build_engine(onnx_files["fp16"], engine).layer_summary
    layers_path(engine).unlink()
    facts = describe_engine(engine)
    assert facts["layer_information"] == "the engine (TensorRT)" and facts["summary"] == summary
    install("10.13.0")  # another TensorRT cannot load it: one line
    with pytest.raises(EngineMetaError, match=r"TensorRT 10.13.0 cannot load .*not compatible") as info:
        describe_engine(engine)
    assert "\n" not in str(info.value)


def test_standin_build_notes_an_engine_it_cannot_inspect(install, onnx_files: dict, tmp_path: Path) -> None:
    from convnext_export.trt.builder import build_engine
    from tests.trt._helpers import dla_settings

    install("10", runtime_fails=True)
    report = build_engine(onnx_files["fp16"], tmp_path / "m.plan")
    assert report.layer_info_path is None and report.layer_summary is None
    assert any(w.startswith("no layer information: the engine inspector failed") for w in report.warnings)
    install("10", runtime_fails=True, dla_cores=1, dla_ops=("Conv",))  # the builder's DLA report is still there
    report = build_engine(onnx_files["fp16"], tmp_path / "d.plan", dla_settings(0), precision="fp16")
    assert report.layer_summary["source"] == "builder log" and report.layers_on_dla
    assert summary_line(report.layer_summary).endswith(
        "(as the builder logged them: the engine inspector gave no layer information)"
    )
