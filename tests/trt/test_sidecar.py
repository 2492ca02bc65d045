"""Engine sidecars: written and read back, the engine cache key, and whether an engine runs on this machine."""

from __future__ import annotations

from pathlib import Path

import pytest

from convnext_export.trt.settings import EngineSettings
from convnext_export.trt.sidecar import (
    EngineMetaError,
    EngineMismatchError,
    cache_key,
    cached_engine_matches,
    check_compatible,
    read_sidecar,
    sidecar_path,
    write_sidecar,
)

PLAN = b"engine bytes (opaque to the sidecar)"


def _engine_with_sidecar(tmp_path: Path, **options: object) -> Path:
    engine = tmp_path / "m.fp16.plan"
    engine.parent.mkdir(exist_ok=True)
    engine.write_bytes(PLAN)
    build_options = EngineSettings(**options).to_dict()
    write_sidecar(
        engine,
        trt_version="10.3.0",
        gpu_name="NVIDIA A100-SXM4-80GB",
        compute_capability="8.0",
        build_options=build_options,
        onnx_path="m.fp16.onnx",
        precision="fp16",
    )
    return engine


def test_sidecar_round_trip_and_errors(tmp_path: Path) -> None:
    engine = tmp_path / "m.plan"
    path = write_sidecar(engine, trt_version="10.3.0", where=tmp_path, shapes=[1, 3, 64, 64])
    assert path == tmp_path / "m.plan.json" == sidecar_path(engine)
    assert read_sidecar(engine) == {"trt_version": "10.3.0", "where": str(tmp_path), "shapes": [1, 3, 64, 64]}
    assert [p.name for p in tmp_path.iterdir()] == ["m.plan.json"]  # written atomically: no leftovers
    with pytest.raises(EngineMetaError, match="has no sidecar other.plan.json") as caught:
        read_sidecar(tmp_path / "other.plan")
    assert "\n" not in str(caught.value)
    path.write_text("{not json")
    with pytest.raises(EngineMetaError, match="is unreadable"):
        read_sidecar(engine)
    path.write_text("[1, 2]")
    with pytest.raises(EngineMetaError, match="not a JSON object"):
        read_sidecar(engine)


def test_cache_key_changes_with_each_input(tmp_path: Path) -> None:
    base = ("sha-onnx", EngineSettings(), "fp16", "10.3.0", "NVIDIA H100", "9.0")
    key = cache_key(*base)
    assert key == cache_key(*base) and len(key) == 64
    variants = [
        ("sha-other", *base[1:]),
        (base[0], EngineSettings(max_batch=16), *base[2:]),
        (base[0], EngineSettings(workspace_mib=1024), *base[2:]),
        (base[0], EngineSettings(opt_level=5), *base[2:]),
        (base[0], EngineSettings(version_compatible=True), *base[2:]),
        (base[0], EngineSettings(hardware_compatible=True), *base[2:]),
        (*base[:2], "int8-trt", *base[3:]),
        (*base[:3], "10.3.1", *base[4:]),
        (*base[:4], "NVIDIA H200", base[5]),
        (*base[:5], "8.9"),
    ]
    keys = {cache_key(*v) for v in variants} | {cache_key(*base, calibration_digest="data")}
    assert len(keys) == len(variants) + 1 and key not in keys
    assert cache_key(base[0], EngineSettings(timing_cache=tmp_path / "t"), *base[2:]) == key  # where, not what
    assert cache_key(base[0], EngineSettings().to_dict(), *base[2:]) == key


def test_cached_engine_matches(tmp_path: Path) -> None:
    engine = tmp_path / "m.plan"
    assert not cached_engine_matches(engine, "k")
    engine.write_bytes(PLAN)
    assert not cached_engine_matches(engine, "k")  # no sidecar
    from convnext_export._files import sha256_of

    write_sidecar(engine, cache_key="k", engine_sha256=sha256_of([engine]))
    assert cached_engine_matches(engine, "k") and not cached_engine_matches(engine, "other")
    engine.write_bytes(b"changed")
    assert not cached_engine_matches(engine, "k")
    sidecar_path(engine).write_text("garbage")
    assert not cached_engine_matches(engine, "k")


def test_check_compatible_same_machine_passes(tmp_path: Path) -> None:
    check_compatible(_engine_with_sidecar(tmp_path), "10.3.0", "NVIDIA A100-SXM4-80GB", "8.0")


@pytest.mark.parametrize(
    ("runtime", "shown"),
    [
        (
            ("10.4.0", "NVIDIA A100-SXM4-80GB", "8.0"),
            "this machine has TensorRT 10.4.0 on GPU NVIDIA A100-SXM4-80GB (sm_80)",
        ),
        (
            ("10.3.0", "NVIDIA H100 80GB HBM3", "9.0"),
            "this machine has TensorRT 10.3.0 on GPU NVIDIA H100 80GB HBM3 (sm_90)",
        ),
    ],
)
def test_check_compatible_mismatch_message(tmp_path: Path, runtime: tuple, shown: str) -> None:
    engine = _engine_with_sidecar(tmp_path)
    with pytest.raises(EngineMismatchError) as caught:
        check_compatible(engine, *runtime)
    message = str(caught.value)
    assert message.startswith(f"engine {engine} was built for TensorRT 10.3.0 on GPU NVIDIA A100-SXM4-80GB (sm_80); ")
    assert shown in message and "rebuild it here with `convnext-export build --onnx m.fp16.onnx`" in message
    assert "not portable across TensorRT versions or GPU architectures" in message and caught.value.exit_code == 2


@pytest.mark.parametrize(
    ("runtime_version", "runs"),
    [("10.3.0", True), ("10.3.1", True), ("10.16.1", True), ("10.2.0", False), ("11.0.0", False), ("8.6.1", False)],
)
def test_check_compatible_version_compatible_engine(tmp_path: Path, runtime_version: str, runs: bool) -> None:
    """Version-compatible engines run on newer TensorRT of the same major version (TensorRT support matrix)."""
    engine = _engine_with_sidecar(tmp_path, version_compatible=True)
    if runs:
        check_compatible(engine, runtime_version, "NVIDIA A100-SXM4-80GB", "8.0")
    else:
        with pytest.raises(EngineMismatchError):
            check_compatible(engine, runtime_version, "NVIDIA A100-SXM4-80GB", "8.0")
    with pytest.raises(EngineMismatchError):  # a plain engine needs exactly its TensorRT
        check_compatible(_engine_with_sidecar(tmp_path / "plain"), "10.3.1", "NVIDIA A100-SXM4-80GB", "8.0")


@pytest.mark.parametrize(
    ("gpu", "runs"),
    [
        (("NVIDIA GeForce RTX 3090", "8.6"), True),
        (("NVIDIA L4", "8.9"), True),
        (("NVIDIA H100", "9.0"), True),
        (("Tesla T4", "7.5"), False),
        (("Tesla V100", "7.0"), False),
    ],
)
def test_check_compatible_hardware_compatible_engine(tmp_path: Path, gpu: tuple, runs: bool) -> None:
    """AMPERE_PLUS engines run on any Ampere-or-newer GPU (NvInfer.h, HardwareCompatibilityLevel)."""
    engine = _engine_with_sidecar(tmp_path, hardware_compatible=True)
    if runs:
        check_compatible(engine, "10.3.0", *gpu)
    else:
        with pytest.raises(EngineMismatchError, match=rf"\(sm_{gpu[1].replace('.', '')}\)"):
            check_compatible(engine, "10.3.0", *gpu)
    with pytest.raises(EngineMismatchError):  # hardware compatibility does not relax the TensorRT version
        check_compatible(engine, "10.4.0", *gpu)
