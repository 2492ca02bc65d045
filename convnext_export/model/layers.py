"""Building blocks shared by the hierarchical and isotropic ConvNeXt networks.

Parameter names match facebookresearch/ConvNeXt exactly (dwconv, norm, pwconv1, pwconv2, gamma), so the
official checkpoints load without renaming.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

LAYER_NORM_EPS = 1e-6


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW tensor.

    Written as permute -> layer_norm -> permute rather than the official `(x - u).pow(2).mean(1)`, so it
    exports as the ONNX LayerNormalization op (opset >= 17), which TensorRT runs as one normalization
    layer; the explicit form overflows in FP16 (facebookresearch/ConvNeXt#80).
    """

    def __init__(self, channels: int, eps: float = LAYER_NORM_EPS) -> None:
        super().__init__(channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch per sample while training; identity in eval."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Block(nn.Module):
    """dwconv 7x7 -> LayerNorm -> Linear C->4C -> GELU -> Linear 4C->C -> layer scale -> drop path -> +x."""

    def __init__(self, dim: int, drop_path: float = 0.0, layer_scale_init: float = 1e-6) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale_init)) if layer_scale_init > 0 else None
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.dwconv(x)
        x = x.permute(0, 2, 3, 1)  # (N, C, H, W) -> (N, H, W, C): the MLP runs channels-last
        x = self.pwconv2(self.act(self.pwconv1(self.norm(x))))
        if self.gamma is not None:
            x = self.gamma * x
        x = x.permute(0, 3, 1, 2)
        return shortcut + self.drop_path(x)


def drop_path_rates(total_blocks: int, max_rate: float) -> list[float]:
    """Stochastic-depth rate per block, rising linearly from 0 to `max_rate` as in the paper.

    Plain Python rather than torch.linspace so building on the meta device works.
    """
    if total_blocks == 1:
        return [0.0]
    return [max_rate * i / (total_blocks - 1) for i in range(total_blocks)]


def init_weights(module: nn.Module) -> None:
    """Official initialisation: truncated normal (std 0.02) weights and zero bias for conv and linear."""
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def is_tracing() -> bool:
    """True while torch.jit or torch.export/dynamo trace the model, when Python-side checks must stay out."""
    return torch.jit.is_tracing() or torch.compiler.is_compiling()
