"""What a build is asked to do: the model, the precisions, the data and the engine settings, checked before any
model is loaded so the API refuses what the CLI refuses."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from convnext_export.errors import InvalidOptionError
from convnext_export.export.trace import check_opset, parse_batch
from convnext_export.model.reference import ModelRequest
from convnext_export.precision.options import CALIBRATION_METHODS, check_choice, require_quantizer
from convnext_export.precision.sensitivity import parse_accuracy_target
from convnext_export.trt.versions import release_of

if TYPE_CHECKING:
    from convnext_export.trt.settings import EngineSettings


DEFAULT_ARTIFACTS = Path("artifacts")
REPORT_NAME = "report.json"
Progress = Callable[[str], None]
# What a build can be asked to make: artifact precisions, and "int8" for both INT8 targets.
PRECISIONS = ("fp32", "fp16", "int8", "int8-trt", "int8-cpu")
INT8_TARGETS = ("trt", "cpu")


@dataclass
class BuildRequest:
    model: ModelRequest
    output_dir: Path | None = None
    image_size: str | None = None
    batch: str | int | None = None
    opset: int = 17
    optimize: bool = True
    images: Path | None = None
    samples: int = 32
    batch_sizes: tuple[int, ...] = (1, 8)
    precisions: tuple[str, ...] = ("fp32",)
    calib: Path | None = None
    calib_samples: int | None = None
    eval_samples: int | None = None  # held-out evaluation images taken from --calib when --images is absent
    calib_method: str = "minmax"
    accuracy_target: str | None = None
    quantizer: str = "ort"
    engine: EngineSettings | None = None  # None: EngineSettings() defaults
    require_engine: bool = False
    trt_version: str | None = None  # the TensorRT of the printed recipes where none is installed (default 10)
    profile: bool = True  # end the build with a latency profile of every artifact, kept in the bundle
    profile_iterations: int = 20

    @property
    def int8_targets(self) -> tuple[str, ...]:
        """The INT8 targets asked for: "int8" means both."""
        wanted = {"trt", "cpu"} if "int8" in self.precisions else set()
        wanted |= {p.removeprefix("int8-") for p in self.precisions if p in ("int8-trt", "int8-cpu")}
        return tuple(t for t in INT8_TARGETS if t in wanted)

    def __post_init__(self) -> None:
        """Reject bad settings before any model is loaded (the API gets the same checks as the CLI)."""
        for name in ("output_dir", "images", "calib"):  # the API takes str paths as the CLI's Path ones
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                setattr(self, name, Path(value))
        self.precisions = tuple(self.precisions)
        self.batch_sizes = tuple(self.batch_sizes)

        check_opset(self.opset)
        if self.model.fold_normalization and not self.optimize:
            raise InvalidOptionError("--fold-normalization folds in the optimize stage: drop --no-optimize")
        parse_batch(self.batch)
        if self.samples < 1:
            raise InvalidOptionError(f"samples must be >= 1, got {self.samples}")
        for precision in self.precisions:
            check_choice("precision", precision, PRECISIONS)
        check_choice("calibration method", self.calib_method, CALIBRATION_METHODS)
        require_quantizer(self.quantizer)
        if self.int8_targets and self.calib is None:
            raise InvalidOptionError("INT8 needs calibration images: pass --calib DIR (e.g. calibration/samples)")
        if self.accuracy_target is not None:
            parse_accuracy_target(self.accuracy_target)
        if self.trt_version is not None:
            release_of(self.trt_version)
        for flag, path in (("--images", self.images), ("--calib", self.calib)):
            require_input_path(flag, path)


def require_input_path(flag: str, path: Path | None) -> None:
    """A mistyped data path fails before the model is loaded and exported, not after."""
    if path is not None and not path.exists():
        raise InvalidOptionError(f"{flag} {path}: no such file or directory")
