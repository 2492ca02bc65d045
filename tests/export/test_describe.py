"""What an ONNX file holds (`inspect_onnx`): opset, inputs and outputs with dynamic dimensions, ops, metadata."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

from convnext_export.errors import ConvNeXtExportError
from convnext_export.export.describe import inspect_onnx
from convnext_export.export.metadata import OnnxFileError
from tests._helpers import image_input, onnx_model


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
    model = onnx_model([helper.make_node("Relu", ["x"], ["y"])], inputs=[image_input(shape=(None, 3, "h", 8))])
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
