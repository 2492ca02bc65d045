"""What a bundle deploys, read from its files: artifacts in contract order, their tensors, and each engine's batch
range from its sidecar, a fixed ONNX batch, or the build settings, in that order."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from convnext_export.contract import artifact_name, engine_name
from convnext_export.pipeline.deployables import DeployError, TensorSpec, bundle_deployables, bundle_metadata
from convnext_export.trt.settings import EngineSettings
from tests.pipeline._helpers import STEM, copy_bundle, fake_engine, sidecar


@pytest.fixture(scope="module")
def bundle(good: object, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_bundle(good.output_dir, tmp_path_factory.mktemp("deployables") / "bundle")


def test_every_artifact_with_its_tensors_and_engine(bundle: Path) -> None:
    deployables = bundle_deployables(bundle, EngineSettings(min_batch=2, opt_batch=4, max_batch=16))
    assert [d.precision for d in deployables] == ["fp32", "fp16", "int8-trt", "int8-cpu"]
    for d in deployables:
        assert d.onnx == bundle / artifact_name(STEM, d.precision)
        assert d.inputs == (TensorSpec("images", "float32", (None, 3, 32, 32)),)
        assert d.outputs == (TensorSpec("logits", "float32", (None, 10)),)
        assert (d.batch.min, d.batch.opt, d.batch.max, d.batch.static) == (2, 4, 16, False)
        assert d.batch.source == "engine settings"
    engines = {d.precision: d.engine for d in deployables}
    assert engines["int8-cpu"] is None and engines["int8-trt"] == bundle / engine_name(STEM, "int8-trt")
    assert not any(d.engine_built for d in deployables)
    assert bundle_metadata(deployables).num_classes == 10


def test_a_built_engine_brings_its_profile(bundle: Path, tmp_path: Path) -> None:
    copy = copy_bundle(bundle, tmp_path / "bundle")
    fake_engine(copy, "fp16", sidecar(1, 2, 4))
    fake_engine(copy, "fp32")  # trtexec: no sidecar
    by_precision = {d.precision: d for d in bundle_deployables(copy, EngineSettings(max_batch=8))}
    fp16, fp32 = by_precision["fp16"], by_precision["fp32"]
    assert fp16.engine_built and (fp16.batch.max, fp16.batch.source) == (4, "engine sidecar")
    assert fp32.engine_built and fp32.sidecar is None and (fp32.batch.max, fp32.batch.source) == (8, "engine settings")


def test_a_fixed_onnx_batch_wins_over_the_settings(bundle: Path, tmp_path: Path) -> None:
    target = tmp_path / "fixed"
    target.mkdir()
    proto = onnx.load(bundle / artifact_name(STEM, "fp32"))
    proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 3
    onnx.save(proto, target / artifact_name(STEM, "fp32"))
    (deployable,) = bundle_deployables(target, EngineSettings(max_batch=16))
    assert (deployable.batch.min, deployable.batch.max, deployable.batch.static) == (3, 3, True)


def test_a_folder_of_two_models_is_refused(bundle: Path, tmp_path: Path) -> None:
    copy = copy_bundle(bundle, tmp_path / "bundle")
    (copy / artifact_name(STEM, "fp32")).rename(copy / artifact_name("other", "fp32"))
    with pytest.raises(DeployError, match="several models"):
        bundle_deployables(copy)
