"""Tests for convnext_export.data.preprocess: the official ConvNeXt eval transform without torch."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from convnext_export.data import preprocess as pp
from convnext_export.errors import ImageError, InvalidOptionError

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def reference_transform(img: Image.Image, input_size: int, crop_pct: float = 0.875) -> np.ndarray:
    """torchvision's eval transform for a square size, written out independently of the module."""
    img = img.convert("RGB")
    w, h = img.size
    if input_size >= 384:
        new_w, new_h = input_size, input_size
    else:
        size = int(input_size / crop_pct)
        short, long = (w, h) if w <= h else (h, w)
        new_short, new_long = size, int(size * long / short)
        new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    arr = np.array(img.resize((new_w, new_h), Image.BICUBIC))
    top = int(round((new_h - input_size) / 2.0))
    left = int(round((new_w - input_size) / 2.0))
    arr = arr[top : top + input_size, left : left + input_size]
    x = arr.astype(np.float32) / np.float32(255)
    return ((x - MEAN) / STD).transpose(2, 0, 1)


def random_image(w: int, h: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")


def photos() -> dict[str, np.ndarray]:
    skdata = pytest.importorskip("skimage.data")
    return {"astronaut": skdata.astronaut(), "chelsea": skdata.chelsea(), "coffee": skdata.coffee()}


# --- geometry -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wh", "resized", "box"),
    [
        # shorter side 375 -> 256, longer int(256*500/375)=int(341.33)=341; (341-224)/2=58.5 rounds to 58
        # (Python's round-half-to-even, as torchvision uses); (256-224)/2=16.
        ((500, 375), (341, 256), (58, 16, 282, 240)),
        ((375, 500), (256, 341), (16, 58, 240, 282)),  # portrait
        ((256, 256), (256, 256), (16, 16, 240, 240)),  # already the resize size
        ((333, 500), (256, 384), (16, 80, 240, 304)),  # int(256*500/333)=int(384.38)=384
        ((1000, 257), (996, 256), (386, 16, 610, 240)),  # int(256*1000/257)=int(996.1)=996
        ((640, 427), (383, 256), (80, 16, 304, 240)),  # int(383.70)=383 truncates; round(79.5)=80
        ((427, 640), (256, 383), (16, 80, 240, 304)),
        ((100, 100), (256, 256), (16, 16, 240, 240)),  # upscaling
    ],
)
def test_geometry_matches_torchvision_rule(wh, resized, box):
    assert pp.eval_config(224).resize_geometry(*wh) == (resized, box)


@pytest.mark.parametrize(
    ("wh", "resized", "box"),
    [
        # targets int(192/0.875)=219, int(256/0.875)=292; 4:3 is a tie -> width binds: int(292*375/500)=219
        ((500, 375), (292, 219), (18, 14, 274, 206)),  # top round(13.5)=14
        ((600, 400), (328, 219), (36, 14, 292, 206)),  # height binds: int(219*600/400)=int(328.5)=328
        ((300, 600), (292, 584), (18, 196, 274, 388)),  # width binds: int(292*600/300)=584
    ],
)
def test_geometry_non_square_target(wh, resized, box):
    assert pp.eval_config((192, 256)).resize_geometry(*wh) == (resized, box)


def test_geometry_warp_at_384_and_above():
    assert pp.eval_config(384).resize_geometry(500, 375) == ((384, 384), (0, 0, 384, 384))
    cfg = pp.eval_config((384, 512))
    assert cfg.warp and cfg.resize_geometry(123, 77) == ((512, 384), (0, 0, 512, 384))


def test_geometry_crop_pct_one_resizes_shorter_side_to_size():
    # int(224*500/375)=int(298.67)=298; (298-224)/2=37
    assert pp.eval_config(224, crop_pct=1.0).resize_geometry(500, 375) == ((298, 224), (37, 0, 261, 224))


def test_eval_config_defaults():
    cfg = pp.eval_config(224)
    assert cfg.image_size == (224, 224) and cfg.crop_pct == 0.875 and not cfg.warp
    assert cfg.interpolation == "bicubic" and cfg.mean == pp.IMAGENET_MEAN and cfg.std == pp.IMAGENET_STD
    assert pp.eval_config((383, 512)).warp is False  # the rule looks at min(H, W)
    big = pp.eval_config(512)
    assert big.warp and big.crop_pct == 1.0
    # an explicit crop_pct at >= 384 is honoured with a crop rather than dropped
    cropped = pp.eval_config(384, crop_pct=0.875)
    assert not cropped.warp and cropped.resize_geometry(384, 384) == ((438, 438), (27, 27, 411, 411))


# --- pixels ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("w", "h", "size"), [(500, 375, 224), (375, 500, 224), (300, 200, 288), (64, 48, 384)])
def test_pixels_equal_reference(w, h, size):
    img = random_image(w, h, seed=w + h)
    out = pp.preprocess_image(img, pp.eval_config(size))
    assert out.shape == (3, size, size) and out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, reference_transform(img, size))


def test_pixels_equal_torch_to_tensor_normalize():
    """Bit-exact against torch's own ToTensor/Normalize arithmetic (what torchvision runs)."""
    torch = pytest.importorskip("torch")
    img = Image.fromarray(photos()["chelsea"])
    cfg = pp.eval_config(224)
    (new_w, new_h), box = cfg.resize_geometry(*img.size)
    cropped = img.resize((new_w, new_h), Image.BICUBIC).crop(box)
    t = torch.from_numpy(np.array(cropped, dtype=np.uint8, copy=True)).permute(2, 0, 1).contiguous()
    t = t.to(dtype=torch.float32).div(255)
    t = t.sub_(torch.as_tensor(cfg.mean).view(-1, 1, 1)).div_(torch.as_tensor(cfg.std).view(-1, 1, 1))
    np.testing.assert_array_equal(pp.preprocess_image(img, cfg), t.numpy())


def test_non_square_pixels_are_the_centre_crop():
    img = random_image(600, 400, seed=3)
    out = pp.preprocess_image(img, pp.eval_config((192, 256)))
    arr = np.array(img.resize((328, 219), Image.BICUBIC))[14:206, 36:292]
    expected = ((arr.astype(np.float32) / np.float32(255) - MEAN) / STD).transpose(2, 0, 1)
    assert out.shape == (3, 192, 256)
    np.testing.assert_array_equal(out, expected)


def test_interpolation_option_is_used():
    img = random_image(120, 90, seed=5)
    cfg = pp.PreprocessConfig((64, 64), crop_pct=1.0, interpolation="bilinear", warp=True)
    arr = np.array(img.resize((64, 64), Image.BILINEAR)).astype(np.float32) / np.float32(255)
    np.testing.assert_array_equal(pp.preprocess_image(img, cfg), ((arr - MEAN) / STD).transpose(2, 0, 1))
    bicubic = pp.preprocess_image(img, pp.PreprocessConfig((64, 64), crop_pct=1.0, warp=True))
    assert not np.array_equal(bicubic, pp.preprocess_image(img, cfg))


def test_real_photographs_batch(tmp_path):
    paths = []
    for i, (name, arr) in enumerate(photos().items()):
        path = tmp_path / f"{name}.{'png' if i % 2 else 'jpg'}"
        Image.fromarray(arr).save(path)
        paths.append(path)
    cfg = pp.eval_config(224)
    batch = pp.preprocess_batch(paths, cfg)
    assert batch.shape == (3, 3, 224, 224) and batch.dtype == np.float32 and batch.flags.c_contiguous
    assert batch.min() >= -2.2 and batch.max() <= 2.7
    channel_means = batch.mean(axis=(2, 3))
    assert np.all(np.abs(channel_means) < 1.5) and np.all(batch.std(axis=(2, 3)) > 0.1)
    for path, item in zip(paths, batch, strict=True):
        np.testing.assert_array_equal(item, reference_transform(Image.open(path), 224))
    assert pp.preprocess_batch([], cfg).shape == (0, 3, 224, 224)


# I;16 is not here: Pillow's convert("RGB") clips 16-bit values, and we scale them from their 16-bit range
# instead (test_sixteen_bit_images_are_scaled_from_their_range_not_clipped).
@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "CMYK"])
def test_any_mode_is_converted_to_rgb(mode, tmp_path):
    img = random_image(80, 60, seed=7).convert(mode)
    cfg = pp.eval_config(32)
    out = pp.preprocess_image(img, cfg)
    assert out.shape == (3, 32, 32)
    np.testing.assert_array_equal(out, pp.preprocess_image(img.convert("RGB"), cfg))
    if mode in ("L", "LA", "RGBA", "P"):  # round trip through a file too
        img.save(tmp_path / "x.png")
        np.testing.assert_array_equal(pp.preprocess_image(tmp_path / "x.png", cfg), out)


def test_load_image_ignores_exif_orientation_unless_asked(tmp_path):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    random_image(40, 20).save(path, exif=exif)
    plain = pp.load_image(path)
    assert plain.mode == "RGB" and plain.size == (40, 20)
    assert pp.load_image(path, exif_transpose=True).size == (20, 40)


def test_module_does_not_import_torch():
    tree = ast.parse(Path(pp.__file__).read_text())
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert not [n for n in names if n.split(".")[0] in ("torch", "torchvision")]


# --- errors ---------------------------------------------------------------------------------------------


def _assert_names_file(excinfo, path):
    message = str(excinfo.value)
    assert str(path) in message and "\n" not in message


def test_truncated_jpeg_raises_image_error(tmp_path):
    full = tmp_path / "full.jpg"
    Image.fromarray(photos()["astronaut"]).save(full, quality=90)
    data = full.read_bytes()
    bad = tmp_path / "truncated.jpg"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError) as excinfo:
        pp.load_image(bad)
    _assert_names_file(excinfo, bad)
    assert "truncated" in str(excinfo.value)
    with pytest.raises(ImageError):
        pp.preprocess_batch([full, bad], pp.eval_config(224))


def test_non_image_and_missing_files_raise_image_error(tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("this is not a picture\n")
    missing = tmp_path / "missing.png"
    for path in (text, missing, tmp_path):
        with pytest.raises(ImageError) as excinfo:
            pp.preprocess_image(path, pp.eval_config(224))
        _assert_names_file(excinfo, path)
    assert isinstance(excinfo.value, ValueError)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"image_size": 0},
        {"image_size": (224, -1)},
        {"image_size": (224,)},
        {"image_size": 224.0},
        {"image_size": True},
        {"image_size": "224"},
        {"crop_pct": 0},
        {"crop_pct": 1.5},
        {"crop_pct": -0.5},
        {"crop_pct": True},
        {"crop_pct": "0.9"},
        {"interpolation": "cubic"},
        {"mean": (0.5, 0.5)},
        {"std": (0.2, 0.0, 0.2)},
        {"std": (0.2, -1.0, 0.2)},
        {"mean": (0.5, float("nan"), 0.5)},
    ],
)
def test_bad_config_values_raise_invalid_option(kwargs):
    args = {"image_size": (224, 224), "crop_pct": 0.875, **kwargs}
    with pytest.raises(InvalidOptionError):
        pp.PreprocessConfig(**args)


def test_error_messages_are_helpful():
    with pytest.raises(InvalidOptionError, match="valid: bicubic, bilinear, lanczos, nearest"):
        pp.eval_config(224, interpolation="cubic")
    with pytest.raises(InvalidOptionError, match=r"\(0, 1\]"):
        pp.eval_config(224, crop_pct=2.0)
    with pytest.raises(InvalidOptionError):
        pp.eval_config(0)
    with pytest.raises(InvalidOptionError):
        pp.eval_config(224).resize_geometry(0, 10)


# --- find_images ----------------------------------------------------------------------------------------


def test_find_images_recursive_filtered_sorted(tmp_path):
    for rel in [
        "b/z.png",
        "b/a.JPG",
        "a.jpeg",
        "c/d/e.webp",
        "c/x.TIFF",
        "notes.txt",
        "c/model.onnx",
        "._a.jpg",
        ".cache/hidden.jpg",
        "noext",
    ]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    found = pp.find_images(tmp_path)
    assert found == sorted(found)
    assert [p.relative_to(tmp_path).as_posix() for p in found] == [
        "a.jpeg",
        "b/a.JPG",
        "b/z.png",
        "c/d/e.webp",
        "c/x.TIFF",
    ]
    assert pp.find_images(str(tmp_path / "c")) == [tmp_path / "c/d/e.webp", tmp_path / "c/x.TIFF"]


def test_find_images_missing_dir(tmp_path):
    with pytest.raises(ImageError, match="missing"):
        pp.find_images(tmp_path / "missing")
    (tmp_path / "file.jpg").write_bytes(b"")
    with pytest.raises(ImageError, match="not a directory"):
        pp.find_images(tmp_path / "file.jpg")


# --- serialisation --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cfg",
    [
        pp.eval_config(224),
        pp.eval_config((192, 256)),
        pp.eval_config(384),
        pp.PreprocessConfig((32, 48), 0.9, "lanczos", (0.5,) * 3, (0.25,) * 3),
        pp.PreprocessConfig((32, 32), 0.875, normalization_folded=True),
    ],
)
def test_to_dict_from_dict_round_trip(cfg):
    d = cfg.to_dict()
    assert isinstance(d["image_size"], list) and isinstance(d["mean"], list)
    restored = pp.PreprocessConfig.from_dict(json.loads(json.dumps(d)))
    assert restored == cfg and restored.image_size == cfg.image_size
    assert isinstance(restored.image_size, tuple) and isinstance(restored.std, tuple)


def test_from_dict_rejects_unknown_keys():
    with pytest.raises(InvalidOptionError, match="crop_ptc"):
        pp.PreprocessConfig.from_dict({**pp.eval_config(224).to_dict(), "crop_ptc": 0.9})


def test_sixteen_bit_images_are_scaled_from_their_range_not_clipped(tmp_path) -> None:
    """A 16-bit greyscale scan holding v * 257 reads exactly as the 8-bit image holding v; a float image in [0, 1]
    likewise (a plain convert("RGB") clipped them: 99.8% of pixels came out 255)."""
    import numpy as np
    from PIL import Image

    from convnext_export.data.preprocess import load_image

    eight = np.arange(256, dtype=np.uint8).reshape(16, 16)
    Image.fromarray(eight).save(tmp_path / "g8.png")
    Image.fromarray(eight.astype(np.uint16) * 257).save(tmp_path / "g16.png")
    Image.fromarray(eight.astype(np.float32) / 255).save(tmp_path / "f.tiff")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    reference = np.asarray(load_image(tmp_path / "g8.png"))
    for name in ("g16.png", "f.tiff"):
        assert np.array_equal(np.asarray(load_image(tmp_path / name)), reference), name


# --- a network that normalises its own input ------------------------------------------------------------------


def test_a_folded_normalisation_gives_the_pixels_the_unfolded_config_normalises_bit_for_bit():
    img = random_image(300, 260, seed=4)
    folded = pp.PreprocessConfig((64, 64), 0.875, mean=(0.5, 0.4, 0.3), std=(0.2, 0.3, 0.25), normalization_folded=True)
    unfolded = pp.PreprocessConfig((64, 64), 0.875, mean=(0.5, 0.4, 0.3), std=(0.2, 0.3, 0.25))
    pixels = pp.preprocess_image(img, folded)
    assert pixels.dtype == np.float32 and pixels.shape == (3, 64, 64) and pixels.flags["C_CONTIGUOUS"]
    assert pixels.min() >= 0 and pixels.max() <= 255 and np.array_equal(pixels, np.round(pixels))
    normalised = pixels.copy()
    pp.normalize_planes(normalised, unfolded)
    np.testing.assert_array_equal(normalised, pp.preprocess_image(img, unfolded))
    np.testing.assert_array_equal(pp.preprocess_image(img, pp.eval_config(64)), reference_transform(img, 64))


def test_a_config_recorded_before_the_fold_existed_is_not_folded():
    recorded = {k: v for k, v in pp.eval_config(224).to_dict().items() if k != "normalization_folded"}
    assert pp.PreprocessConfig.from_dict(recorded).normalization_folded is False
