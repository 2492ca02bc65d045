"""The ConvNeXt variant registry, kept as data, plus architecture arithmetic that needs no torch.

Parameter and MAC counts are computed from the configuration alone, so `convnext-export variants`
stays instant; tests check them against the built torch modules.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from convnext_export.errors import InputSizeError, InvalidOptionError, UnknownNameError

MLP_RATIO = 4
DW_KERNEL = 7


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to build one ConvNeXt network; names follow the options users know."""

    name: str
    depths: tuple[int, ...]
    dims: tuple[int, ...]
    isotropic: bool = False
    patch_size: int = 4
    in_channels: int = 3
    num_classes: int | None = 1000
    drop_path: float = 0.0
    dropout: float = 0.0
    layer_scale_init: float = 1e-6
    head_init_scale: float = 1.0
    image_size: tuple[int, int] = (224, 224)
    features_only: bool = False

    def __post_init__(self) -> None:
        _check_config(self)

    @property
    def stride(self) -> int:
        """Total downsampling factor: stem patch times the three 2x2 downsamplers (isotropic: patch only)."""
        return self.patch_size if self.isotropic else self.patch_size * 2 ** (len(self.dims) - 1)

    @property
    def num_features(self) -> int:
        """Width of the pooled feature vector that feeds the classifier."""
        return self.dims[-1]

    @property
    def output_size(self) -> int:
        """Length of the output vector: the class count, or the pooled feature width when headless."""
        return self.num_classes if self.num_classes is not None else self.num_features

    @property
    def has_layer_scale(self) -> bool:
        return self.layer_scale_init > 0

    def replace(self, **changes: object) -> ModelConfig:
        return dataclasses.replace(self, **changes)


def _check_config(cfg: ModelConfig) -> None:
    """Reject impossible options early with messages that name the option."""
    if len(cfg.depths) != len(cfg.dims) or not cfg.depths:
        raise InvalidOptionError(f"depths {list(cfg.depths)} and dims {list(cfg.dims)} must have equal length")
    if not cfg.isotropic and len(cfg.depths) != 4:
        raise InvalidOptionError(f"a hierarchical ConvNeXt has 4 stages; got depths {list(cfg.depths)}")
    if cfg.isotropic and len(cfg.depths) != 1:
        raise InvalidOptionError("an isotropic ConvNeXt has one stage: depths=(N,), dims=(C,)")
    if any(d <= 0 for d in cfg.depths) or any(c <= 0 for c in cfg.dims):
        raise InvalidOptionError("depths and dims must be positive")
    if cfg.patch_size <= 0 or cfg.in_channels <= 0:
        raise InvalidOptionError("patch_size and in_channels must be positive")
    if cfg.num_classes is not None and cfg.num_classes <= 0:
        raise InvalidOptionError("num_classes must be positive, or None for pooled features")
    for option in ("drop_path", "dropout"):
        if not 0.0 <= getattr(cfg, option) < 1.0:
            raise InvalidOptionError(f"{option} must be in [0, 1); got {getattr(cfg, option)}")
    if cfg.layer_scale_init < 0:
        raise InvalidOptionError("layer_scale_init must be >= 0 (0 disables layer scale)")
    check_input_size(cfg, *cfg.image_size)


def _nearest_multiples(size: int, stride: int) -> list[int]:
    low = max(stride, size // stride * stride)
    high = -(-size // stride) * stride
    return sorted({low, high})


def check_input_size(cfg: ModelConfig, height: int, width: int) -> None:
    """Raise a clear error naming the nearest valid sizes when height or width is not a stride multiple."""
    s = cfg.stride
    if height % s == 0 and width % s == 0 and height > 0 and width > 0:
        return
    heights = _nearest_multiples(height, s)
    widths = _nearest_multiples(width, s)
    options = ", ".join(f"{h}x{w}" for h in heights for w in widths)
    raise InputSizeError(
        f"input size {height}x{width} does not fit convnext_{cfg.name}: height and width must be "
        f"multiples of its total stride {s}; nearest valid sizes: {options}"
    )


def _hierarchical(name: str, depths: tuple[int, ...], dims: tuple[int, ...]) -> ModelConfig:
    return ModelConfig(name=name, depths=depths, dims=dims)


def _isotropic(name: str, depth: int, dim: int) -> ModelConfig:
    # Official isotropic models: 16x16 patch stem without LayerNorm, no layer scale by default.
    return ModelConfig(name=name, depths=(depth,), dims=(dim,), isotropic=True, patch_size=16, layer_scale_init=0.0)


# Sources: the official repo (tiny..xlarge, isotropic) and timm (atto..nano, the "conv_mlp" family, whose
# weights convert to this layout). `test` is ours: the smallest network that exercises every code path.
VARIANTS: dict[str, ModelConfig] = {
    cfg.name: cfg
    for cfg in (
        _hierarchical("test", (1, 1, 2, 1), (8, 16, 32, 64)),
        _hierarchical("atto", (2, 2, 6, 2), (40, 80, 160, 320)),
        _hierarchical("femto", (2, 2, 6, 2), (48, 96, 192, 384)),
        _hierarchical("pico", (2, 2, 6, 2), (64, 128, 256, 512)),
        _hierarchical("nano", (2, 2, 8, 2), (80, 160, 320, 640)),
        _hierarchical("tiny", (3, 3, 9, 3), (96, 192, 384, 768)),
        _hierarchical("small", (3, 3, 27, 3), (96, 192, 384, 768)),
        _hierarchical("base", (3, 3, 27, 3), (128, 256, 512, 1024)),
        _hierarchical("large", (3, 3, 27, 3), (192, 384, 768, 1536)),
        _hierarchical("xlarge", (3, 3, 27, 3), (256, 512, 1024, 2048)),
        _isotropic("isotropic_small", 18, 384),
        _isotropic("isotropic_base", 18, 768),
        _isotropic("isotropic_large", 36, 1024),
    )
}

# Options create_model accepts on top of a variant; architecture-defining ones come from the variant.
BUILD_OPTIONS = (
    "in_channels",
    "num_classes",
    "depths",
    "dims",
    "patch_size",
    "drop_path",
    "dropout",
    "layer_scale_init",
    "head_init_scale",
    "image_size",
    "features_only",
)


def list_variants() -> list[str]:
    """Registered variant names, smallest first within each family."""
    return list(VARIANTS)


def normalize_variant_name(name: str) -> str:
    """Accept the spellings users paste from other tools: 'convnext_tiny', 'ConvNeXt-T', 'convnext-iso-small'."""
    key = name.strip().lower().replace("-", "_")
    key = key.removeprefix("convnext_").removeprefix("convnext")
    key = key.replace("iso_", "isotropic_")
    aliases = {"t": "tiny", "s": "small", "b": "base", "l": "large", "xl": "xlarge"}
    return aliases.get(key, key)


def get_variant(name: str) -> ModelConfig:
    """The registered configuration for `name`, or an error listing every valid name."""
    key = normalize_variant_name(name)
    if key not in VARIANTS:
        raise UnknownNameError("variant", name, VARIANTS)
    return VARIANTS[key]


def make_config(variant: str | ModelConfig, **options: object) -> ModelConfig:
    """A variant's configuration with user options applied; unknown option names are an error."""
    base = variant if isinstance(variant, ModelConfig) else get_variant(variant)
    unknown = sorted(set(options) - set(BUILD_OPTIONS))
    if unknown:
        raise UnknownNameError("model option", unknown[0], BUILD_OPTIONS)
    changes = {k: v for k, v in options.items() if v is not None or k == "num_classes"}
    if "image_size" in changes:
        changes["image_size"] = parse_image_size(changes["image_size"])  # type: ignore[arg-type]
    for key in ("depths", "dims"):
        if key in changes:
            changes[key] = tuple(int(v) for v in changes[key])  # type: ignore[union-attr]
    return base.replace(**changes)


def parse_image_size(value: int | str | tuple[int, int] | list[int]) -> tuple[int, int]:
    """Accept 224, '224', '192x256' or (192, 256) and return (height, width)."""
    if isinstance(value, int):
        return (value, value)
    if isinstance(value, str):
        parts = value.lower().replace(",", "x").split("x")
        try:
            sizes = [int(p) for p in parts]
        except ValueError:
            raise InvalidOptionError(f"image size {value!r} is not N or HxW (e.g. 224 or 192x256)") from None
    else:
        sizes = [int(v) for v in value]
    if len(sizes) == 1:
        sizes *= 2
    if len(sizes) != 2 or min(sizes) <= 0:
        raise InvalidOptionError(f"image size {value!r} is not N or HxW with positive sizes")
    return (sizes[0], sizes[1])


def describe_architecture(arch: ModelConfig | object) -> str:
    """One-line shape summary of a config or of an architecture read from weights."""
    kind = "isotropic " if arch.isotropic else ""
    depths, dims = list(arch.depths), list(arch.dims)
    return f"{kind}depths {depths}, dims {dims}, patch {arch.patch_size}"


def stage_shapes(cfg: ModelConfig, height: int, width: int) -> list[tuple[int, int, int]]:
    """(channels, height, width) of each map that features mode returns."""
    check_input_size(cfg, height, width)
    if cfg.isotropic:
        return [(cfg.dims[0], height // cfg.patch_size, width // cfg.patch_size)] * 4
    out = []
    for i, dim in enumerate(cfg.dims):
        scale = cfg.patch_size * 2**i
        out.append((dim, height // scale, width // scale))
    return out


def _block_params(dim: int, layer_scale: bool) -> int:
    hidden = MLP_RATIO * dim
    dwconv = dim * DW_KERNEL * DW_KERNEL + dim
    norm = 2 * dim
    mlp = dim * hidden + hidden + hidden * dim + dim
    return dwconv + norm + mlp + (dim if layer_scale else 0)


def count_parameters(cfg: ModelConfig) -> int:
    """Exact trainable parameter count of the network `cfg` builds."""
    p, dims = cfg.patch_size, cfg.dims
    total = cfg.in_channels * dims[0] * p * p + dims[0]
    if not cfg.isotropic:
        total += 2 * dims[0]  # stem LayerNorm
        total += sum(2 * a + a * b * 4 + b for a, b in zip(dims[:-1], dims[1:], strict=True))
    total += sum(depth * _block_params(dim, cfg.has_layer_scale) for depth, dim in zip(cfg.depths, dims, strict=True))
    if not cfg.features_only:
        total += 2 * dims[-1]  # final LayerNorm
        if cfg.num_classes is not None:
            total += dims[-1] * cfg.num_classes + cfg.num_classes
    return total


def inference_bytes(cfg: ModelConfig, batch: int, height: int | None = None, width: int | None = None) -> int:
    """A coarse estimate of one forward pass's memory, to refuse requests that cannot fit (real use is higher:
    allocator arenas, tracing): the float32 weights, plus three times the largest activation (a block's 4x-wide
    MLP map, with its GELU output and the block input beside it) for the batch."""
    height, width = (height, width) if height and width else cfg.image_size
    scales = [cfg.patch_size * (1 if cfg.isotropic else 2**i) for i in range(len(cfg.dims))]
    largest = max(MLP_RATIO * dim * (height // s) * (width // s) for dim, s in zip(cfg.dims, scales, strict=True))
    return 4 * count_parameters(cfg) + 3 * 4 * batch * largest


def count_macs(cfg: ModelConfig, height: int | None = None, width: int | None = None) -> int:
    """Multiply-accumulates of convolutions and linear layers, the quantity the paper reports as FLOPs."""
    height, width = (height, width) if height and width else cfg.image_size
    check_input_size(cfg, height, width)
    p, dims = cfg.patch_size, cfg.dims
    h, w = height // p, width // p
    macs = h * w * dims[0] * cfg.in_channels * p * p
    for i, (depth, dim) in enumerate(zip(cfg.depths, dims, strict=True)):
        if i > 0:
            h, w = h // 2, w // 2
            macs += h * w * dim * dims[i - 1] * 4
        per_block = h * w * dim * (DW_KERNEL * DW_KERNEL + 2 * MLP_RATIO * dim)
        macs += depth * per_block
    if not cfg.features_only and cfg.num_classes is not None:
        macs += dims[-1] * cfg.num_classes
    return macs
