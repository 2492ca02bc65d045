"""The Triton model repository written from a copy of the digits bundle.

Every config.pbtxt is parsed with Triton's own ModelConfig message (tritonclient's model_config_pb2) through
protobuf's text format, so a misspelled field or a wrong type fails here. The values follow the artifact: tensor
names, types and shapes from the ONNX graph, the batch range from the engine's sidecar (or the build settings), and
ONNX Runtime runs the served file at the largest batch the configuration admits with the shapes it declares.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest

from convnext_export.contract import artifact_name
from convnext_export.pipeline.deployables import DeployError
from convnext_export.pipeline.triton import write_model_repository
from convnext_export.trt.settings import EngineSettings
from tests.pipeline._helpers import STEM, copy_bundle, fake_engine, model_config_pb2, parse_model_config, sidecar


@pytest.fixture(scope="module")
def bundle(good: object, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_bundle(good.output_dir, tmp_path_factory.mktemp("triton") / "bundle")


def _dims(tensor: object) -> list[int]:
    return list(tensor.dims)


def test_the_onnx_model_follows_the_artifact(bundle: Path, tmp_path: Path) -> None:
    pb2 = model_config_pb2()
    repository = write_model_repository(bundle, tmp_path / "repo", EngineSettings(opt_batch=4, max_batch=16))
    assert [m.name for m in repository.models] == [f"{STEM}_onnx"]  # no engine built here yet
    assert len(repository.skipped) == 3 and all("build_engine.sh" in s for s in repository.skipped)
    model = repository.models[0]
    config = parse_model_config(model.config)
    assert config.name == model.config.parent.name == model.name
    assert config.platform == "onnxruntime_onnx" and config.default_model_filename == "model.onnx"
    assert config.max_batch_size == 16  # the profile's largest batch; the dims leave the batch out
    assert [(t.name, t.data_type, _dims(t)) for t in config.input] == [("images", pb2.TYPE_FP32, [3, 32, 32])]
    assert [(t.name, t.data_type, _dims(t)) for t in config.output] == [("logits", pb2.TYPE_FP32, [10])]
    assert list(config.dynamic_batching.preferred_batch_size) == [4, 16]
    served = model.config.parent / "1" / "model.onnx"
    assert served.read_bytes() == (bundle / artifact_name(STEM, "fp32")).read_bytes()
    assert os.path.samefile(served, bundle / artifact_name(STEM, "fp32"))  # hard-linked, not copied
    labels = (model.config.parent / config.output[0].label_filename).read_text().splitlines()
    assert labels == [str(i) for i in range(10)]  # Triton's classification extension: one label per line


def test_onnx_runtime_runs_the_served_file_with_the_declared_shapes(bundle: Path, tmp_path: Path) -> None:
    import onnxruntime as ort

    model = write_model_repository(bundle, tmp_path / "repo").models[0]
    config = parse_model_config(model.config)
    session = ort.InferenceSession(str(model.model_file), providers=["CPUExecutionProvider"])
    batch = np.zeros([config.max_batch_size, *config.input[0].dims], np.float32)
    (logits,) = session.run([config.output[0].name], {config.input[0].name: batch})
    assert list(logits.shape) == [config.max_batch_size, *config.output[0].dims]


def test_built_engines_become_tensorrt_models(bundle: Path, tmp_path: Path) -> None:
    copy = copy_bundle(bundle, tmp_path / "bundle")
    fake_engine(copy, "fp16", sidecar(1, 4, 16))
    fake_engine(copy, "int8-trt")  # built with trtexec: no sidecar, the settings give the batch range
    repository = write_model_repository(copy, tmp_path / "repo", EngineSettings(max_batch=8), link=False)
    models = {m.name: m for m in repository.models}
    assert set(models) == {f"{STEM}_onnx", f"{STEM}_fp16_trt", f"{STEM}_int8_trt"}
    assert repository.skipped == [
        f"{STEM}.fp32.plan: not built yet (run ./build_engine.sh in the bundle, then this again)"
    ]
    fp16, int8 = (parse_model_config(models[f"{STEM}_{p}_trt"].config) for p in ("fp16", "int8"))
    pb2 = model_config_pb2()
    for config in (fp16, int8):
        assert config.platform == "tensorrt_plan" and config.default_model_filename == "model.plan"
        assert [g.kind for g in config.instance_group] == [pb2.ModelInstanceGroup.KIND_GPU]
        assert _dims(config.input[0]) == [3, 32, 32] and config.input[0].data_type == pb2.TYPE_FP32
    assert fp16.max_batch_size == 16 and list(fp16.dynamic_batching.preferred_batch_size) == [4, 16]
    assert int8.max_batch_size == 8 and list(int8.dynamic_batching.preferred_batch_size) == [8]
    served, source = models[f"{STEM}_fp16_trt"].model_file, copy / f"{STEM}.fp16.plan"
    assert served.read_bytes() == source.read_bytes() and not os.path.samefile(served, source)  # link=False copies
    assert "Orin (compute capability 8.7)" in models[f"{STEM}_fp16_trt"].config.read_text()


def test_a_fixed_batch_is_served_without_batching(bundle: Path, tmp_path: Path) -> None:
    """A graph that fixes its batch at 3 accepts exactly 3: max_batch_size 0 and the full shape."""
    target = tmp_path / "fixed"
    target.mkdir()
    proto = onnx.load(bundle / artifact_name(STEM, "fp32"))
    for value in (*proto.graph.input, *proto.graph.output):
        value.type.tensor_type.shape.dim[0].dim_value = 3
    onnx.save(proto, target / artifact_name(STEM, "fp32"))
    config = parse_model_config(write_model_repository(target, tmp_path / "repo").models[0].config)
    assert (
        config.max_batch_size == 0 and _dims(config.input[0]) == [3, 3, 32, 32] and _dims(config.output[0]) == [3, 10]
    )
    assert not config.HasField("dynamic_batching")


def test_the_schema_rejects_a_misspelled_field(tmp_path: Path) -> None:
    from google.protobuf import text_format

    path = tmp_path / "config.pbtxt"
    path.write_text('name: "m"\nplatform: "onnxruntime_onnx"\nmax_batch: 8\n')
    with pytest.raises(text_format.ParseError, match="max_batch"):
        parse_model_config(path)


def test_a_folder_without_artifacts_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(DeployError, match="no ONNX artifact"):
        write_model_repository(tmp_path, tmp_path / "repo")
    with pytest.raises(DeployError, match="not a directory"):
        write_model_repository(tmp_path / "missing", tmp_path / "repo")
