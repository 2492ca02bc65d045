"""The input normalisation as the network's own first step, for artifacts that take 0-255 RGB pixels.

DeepStream's nvinfer normalises with one scale factor and per-channel offsets, y = net-scale-factor * (x - offset[c]),
which cannot express ImageNet's per-channel std. `--fold-normalization` exports a network that takes float RGB in
0-255 and normalises itself: `NormalizedInput` computes (x / 255 - mean) / std in front of the network, in the
operation order and float32 arithmetic of data.preprocess.normalize_planes, so that
- the traced graph starts with those three operations, which the optimize stage folds into the stem convolution
  (export.folds.fold_input_normalization, checked with ONNX Runtime against the graph before it like every fold);
- the eager reference of such an artifact (model.reference.reference_model) is this wrapper, fed the same 0-255
  pixels as the artifact: validation, check and calibration stay apples to apples.

The fold is exact in real arithmetic only into an unpadded, ungrouped convolution over the 3 RGB channels (a padded
one pads the pixels with 0 where the unfolded network pads the normalised input with 0, i.e. the pixel 255 * mean),
so `check_foldable_stem` refuses any other stem before anything is exported.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from convnext_export.contract import IMAGENET_MEAN, IMAGENET_STD, PIXEL_MAX
from convnext_export.errors import InvalidOptionError
from convnext_export.model.convnext import ConvNeXt, ConvNeXtNetwork

RGB = 3


class NormalizationFoldError(InvalidOptionError):
    """A network whose stem convolution cannot absorb the input normalisation exactly."""


def stem_convolution(network: ConvNeXtNetwork) -> nn.Module:
    """The convolution that reads the network input: the patchify stem of either family."""
    return network.downsample_layers[0][0] if isinstance(network, ConvNeXt) else network.stem


def check_foldable_stem(network: ConvNeXtNetwork) -> None:
    """NormalizationFoldError (one line) unless the stem is an unpadded, ungrouped convolution over RGB."""
    conv = stem_convolution(network)
    if not isinstance(conv, nn.Conv2d):
        why = f"is a {type(conv).__name__}, not a convolution"
    elif conv.padding not in ("valid", (0, 0)):
        why = f"has padding {conv.padding} (the padded border would not be normalised)"
    elif conv.groups != 1:
        why = f"is grouped ({conv.groups} groups)"
    elif conv.in_channels != RGB:
        why = f"reads {conv.in_channels} channels, not RGB's {RGB}"
    else:
        return
    raise NormalizationFoldError(
        f"--fold-normalization: the stem of convnext_{network.config.name} {why}, so mean and std cannot be folded "
        "into it exactly; export without --fold-normalization"
    )


class NormalizedInput(nn.Module):
    """`network` behind (x / 255 - mean) / std: takes RGB float pixels in 0-255, computes what `network` computes
    on the normalised image. `config` and `weights_info` are the network's, so every stage treats it as one."""

    def __init__(
        self,
        network: ConvNeXtNetwork,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        check_foldable_stem(network)
        super().__init__()
        self.network = network
        self.config = network.config
        self.weights_info = getattr(network, "weights_info", None)
        self.normalization = (tuple(float(m) for m in mean), tuple(float(s) for s in std))
        for name, values in zip(("mean", "std"), self.normalization, strict=True):
            tensor = torch.tensor(values, dtype=torch.float32).view(1, RGB, 1, 1)
            self.register_buffer(name, tensor, persistent=False)  # not weights: the checkpoint stays the network's

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        return self.network((x / PIXEL_MAX - self.mean) / self.std)
