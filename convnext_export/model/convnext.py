"""ConvNeXt networks (Liu et al., "A ConvNet for the 2020s", CVPR 2022), hierarchical and isotropic.

Module layout and parameter names follow facebookresearch/ConvNeXt (models/convnext.py and
models/convnext_isotropic.py), so official checkpoints load as they are.

Outputs, by configuration:
- classifier (num_classes=N): logits (B, N);
- headless (num_classes=None): pooled, normalised features (B, dims[-1]);
- features_only: a tuple of four NCHW maps, one per stage (backbone use).
"""

from __future__ import annotations

import torch
from torch import nn

from convnext_export.model.layers import LAYER_NORM_EPS, Block, LayerNorm2d, drop_path_rates, init_weights, is_tracing
from convnext_export.model.variants import ModelConfig, check_input_size


class ConvNeXtNetwork(nn.Module):
    """What both families share: head, initialisation, input checks and the three forward modes."""

    config: ModelConfig

    def _build_head(self, cfg: ModelConfig) -> None:
        if cfg.features_only:
            return
        self.norm = nn.LayerNorm(cfg.num_features, eps=LAYER_NORM_EPS)
        self.head_drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.num_features, cfg.num_classes) if cfg.num_classes else nn.Identity()

    def _init_parameters(self, cfg: ModelConfig) -> None:
        self.apply(init_weights)
        if isinstance(getattr(self, "head", None), nn.Linear):
            with torch.no_grad():
                self.head.weight.mul_(cfg.head_init_scale)
                self.head.bias.mul_(cfg.head_init_scale)

    @property
    def output_size(self) -> int:
        """Length of the output vector (class count, or feature width when headless)."""
        return self.config.output_size

    def check_input(self, x: torch.Tensor) -> None:
        """Fail with the nearest valid sizes instead of a shape error deep inside the network."""
        if x.ndim != 4 or x.shape[1] != self.config.in_channels:
            raise ValueError(f"expected input of shape (N, {self.config.in_channels}, H, W); got {tuple(x.shape)}")
        check_input_size(self.config, int(x.shape[-2]), int(x.shape[-1]))

    def forward_stages(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The four stage maps, highest resolution first."""
        raise NotImplementedError  # each family defines its own trunk

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Global-average-pooled, normalised features (the official `forward_features`)."""
        if self.config.features_only:
            raise RuntimeError("a features_only model has no pooled features; call forward_stages")
        return self.norm(self.forward_stages(x)[-1].mean((-2, -1)))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(self.head_drop(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        if not is_tracing():
            self.check_input(x)
        if self.config.features_only:
            return self.forward_stages(x)
        return self.forward_head(self.forward_features(x))


class ConvNeXt(ConvNeXtNetwork):
    """Hierarchical ConvNeXt: patchify stem + LayerNorm, four stages, LayerNorm + 2x2 conv between them."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = cfg = config
        dims = cfg.dims
        stem = nn.Sequential(
            nn.Conv2d(cfg.in_channels, dims[0], kernel_size=cfg.patch_size, stride=cfg.patch_size),
            LayerNorm2d(dims[0]),
        )
        downsamplers = [
            nn.Sequential(LayerNorm2d(dims[i - 1]), nn.Conv2d(dims[i - 1], dims[i], kernel_size=2, stride=2))
            for i in range(1, len(dims))
        ]
        self.downsample_layers = nn.ModuleList([stem, *downsamplers])
        rates = iter(drop_path_rates(sum(cfg.depths), cfg.drop_path))
        self.stages = nn.ModuleList(
            nn.Sequential(*(Block(dim, next(rates), cfg.layer_scale_init) for _ in range(depth)))
            for depth, dim in zip(cfg.depths, dims, strict=True)
        )
        self._build_head(cfg)
        self._init_parameters(cfg)

    def forward_stages(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        maps = []
        for downsample, stage in zip(self.downsample_layers, self.stages, strict=True):
            x = stage(downsample(x))  # (N, dims[i], H / (patch * 2^i), W / (patch * 2^i))
            maps.append(x)
        return tuple(maps)


class ConvNeXtIsotropic(ConvNeXtNetwork):
    """Isotropic ConvNeXt (paper section 5): a 16x16 patch stem and one resolution throughout.

    It has no stages; features mode returns the maps after each quarter of the blocks, all at stride 16.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = cfg = config
        dim, depth = cfg.dims[0], cfg.depths[0]
        self.stem = nn.Conv2d(cfg.in_channels, dim, kernel_size=cfg.patch_size, stride=cfg.patch_size)
        rates = drop_path_rates(depth, cfg.drop_path)
        self.blocks = nn.Sequential(*(Block(dim, rates[i], cfg.layer_scale_init) for i in range(depth)))
        self._build_head(cfg)
        self._init_parameters(cfg)

    def _quarter_ends(self) -> list[int]:
        depth = len(self.blocks)
        return [max(1, round(depth * q / 4)) for q in (1, 2, 3, 4)]

    def forward_stages(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = self.stem(x)  # (N, C, H / 16, W / 16)
        maps, start = [], 0
        for end in self._quarter_ends():
            for block in self.blocks[start:end]:
                x = block(x)
            maps.append(x)
            start = end
        return tuple(maps)


def build_network(config: ModelConfig) -> ConvNeXtNetwork:
    """The network for `config`, in eval mode (training is the caller's explicit choice)."""
    network = ConvNeXtIsotropic(config) if config.isotropic else ConvNeXt(config)
    return network.eval()
