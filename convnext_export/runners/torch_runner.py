"""Eager PyTorch as a runner: the reference every exported artifact is validated against."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from convnext_export.contract import FEATURE_NAMES, INPUT_NAME, LOGITS_NAME, output_names
from convnext_export.errors import InvalidOptionError
from convnext_export.runners.base import Runner


def resolve_device(device: str | torch.device) -> torch.device:
    """A usable torch device; asking for CUDA where there is none is a user error, not a crash later."""
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise InvalidOptionError(f"invalid device {device!r}; valid: cpu, cuda, cuda:<index>") from None
    if resolved.type == "cpu":
        return resolved
    if resolved.type != "cuda":
        raise InvalidOptionError(f"unsupported device {device!r}; valid: cpu, cuda, cuda:<index>")
    if not torch.cuda.is_available():
        raise InvalidOptionError(f"device {device!r} requested but CUDA is not available; use 'cpu'")
    if resolved.index is not None and resolved.index >= torch.cuda.device_count():
        raise InvalidOptionError(f"device {device!r} does not exist: {torch.cuda.device_count()} CUDA device(s)")
    return resolved


class TorchRunner(Runner):
    """Runs an nn.Module in eval mode under inference_mode.

    The module is moved to `device` in place (a no-op on CPU). Input is cast to the module's parameter
    dtype, so a `.half()` model on CUDA works; outputs come back as float32 numpy arrays. Reading them
    with `.cpu()` synchronizes the device, so no explicit CUDA synchronize is needed here.
    """

    def __init__(self, model: nn.Module, device: str | torch.device = "cpu", name: str | None = None) -> None:
        self.device = resolve_device(device)
        self.model: nn.Module | None = model.eval().to(self.device)
        self.name = name or f"torch-{self.device.type}"
        self.input_name = INPUT_NAME
        config = getattr(model, "config", None)
        self.output_names = output_names(bool(getattr(config, "features_only", False)))
        self._dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)

    def _infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        assert self.model is not None  # closed runners are refused by Runner.infer
        x = torch.from_numpy(batch).to(self.device, self._dtype)
        with torch.inference_mode():
            out = self.model(x)
        return self._name_outputs(out)

    def _name_outputs(self, out: torch.Tensor | tuple[torch.Tensor, ...]) -> dict[str, np.ndarray]:
        """Key outputs by contract names: a tensor is `logits`, a 4-tuple the stage maps."""
        if isinstance(out, torch.Tensor):
            return {LOGITS_NAME: out.float().cpu().numpy()}
        if isinstance(out, (tuple, list)) and len(out) == len(FEATURE_NAMES):
            return {n: t.float().cpu().numpy() for n, t in zip(FEATURE_NAMES, out, strict=True)}
        raise TypeError(f"{self.name}: model returned {type(out).__name__}; expected a tensor or 4 stage maps")

    def _release(self) -> None:
        self.model = None  # drop the reference; the caller still owns the module
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
