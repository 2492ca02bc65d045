"""Engine settings (validation, their record, a fixed batch) and the precision plan per TensorRT generation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from convnext_export.errors import InvalidOptionError
from convnext_export.trt.settings import IMPLICIT_INT8, EngineBuildError, EngineSettings, precision_plan


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_batch": 0}, "1 <= min <= opt <= max"),
        ({"min_batch": 4, "opt_batch": 2}, "1 <= min <= opt <= max"),
        ({"opt_batch": 16, "max_batch": 8}, "1 <= min <= opt <= max"),
        ({"workspace_mib": 0}, "workspace must be a positive"),
        ({"opt_level": 6}, "optimization level must be 0 to 5"),
        ({"opt_level": -1}, "optimization level must be 0 to 5"),
        ({"dla_core": -1, "max_batch": 1}, "DLA core must be 0 or more"),
    ],
)
def test_settings_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidOptionError, match=message) as caught:
        EngineSettings(**kwargs)
    assert caught.value.exit_code == 2


def test_settings_to_dict_and_fixed_batch(tmp_path: Path) -> None:
    settings = EngineSettings(opt_batch=4, timing_cache=str(tmp_path / "t.cache"), opt_level=0)
    assert settings.timing_cache == tmp_path / "t.cache"
    assert settings.to_dict() == {
        "min_batch": 1,
        "opt_batch": 4,
        "max_batch": 8,
        "workspace_mib": 2048,
        "opt_level": 0,
        "timing_cache": str(tmp_path / "t.cache"),
        "dla_core": None,
        "version_compatible": False,
        "hardware_compatible": False,
        "tf32": False,
    }
    assert json.loads(json.dumps(settings.to_dict())) == settings.to_dict()
    fixed = settings.with_batch(2)
    assert (fixed.min_batch, fixed.opt_batch, fixed.max_batch, fixed.opt_level) == (2, 2, 2, 0)


def test_precision_plan_table() -> None:
    assert precision_plan("8", "fp16").flags == ("FP16", "OBEY_PRECISION_CONSTRAINTS")
    assert precision_plan("10", IMPLICIT_INT8).flags == ("INT8", "FP16", "OBEY_PRECISION_CONSTRAINTS")
    assert precision_plan("10", "int8-trt").strongly_typed and not precision_plan("10", "fp32").strongly_typed
    assert all(
        precision_plan("11", p).strongly_typed and not precision_plan("11", p).flags
        for p in ("fp32", "fp16", "int8-trt")
    )
    with pytest.raises(EngineBuildError, match="TensorRT 11 has no implicit INT8 calibration"):
        precision_plan("11", IMPLICIT_INT8)
