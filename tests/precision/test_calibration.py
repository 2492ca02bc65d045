"""Tests for convnext_export.precision.calibration: reading, sampling and batching INT8 calibration data."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from convnext_export.contract import INPUT_NAME
from convnext_export.data.preprocess import eval_config, preprocess_image
from convnext_export.errors import ConvNeXtExportError, InvalidOptionError
from convnext_export.precision import calibration as cal
from convnext_export.precision.calibration import (
    CalibrationDataError,
    calibration_reader,
    load_calibration_set,
    load_calibration_split,
)
from tests._paths import DIGITS, SAMPLE_PHOTOS

SIZE = 32
CONFIG = eval_config(SIZE)  # resize to 36 on the short side, centre crop 32: fast and still a real transform
TEST_SET = DIGITS / "test"  # the digits test split, for the held-out split


def pixels(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def write_image(path: Path, seed: int = 0, size: tuple[int, int] = (40, 50)) -> Path:
    """A random RGB picture; the format follows the extension (lossless ones where tests compare pixels)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels(*size, seed)).save(path)
    return path


def write_corrupt(path: Path, kind: str = "garbage") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "truncated":
        write_image(path, seed=99)
        path.write_bytes(path.read_bytes()[:200])
    else:
        path.write_bytes(b"this is not an image at all")
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Twenty readable PNGs named 00..19, in two subfolders."""
    for i in range(20):
        write_image(tmp_path / f"d{i % 2}" / f"{i:02d}.png", seed=i)
    return tmp_path


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message and message
    assert isinstance(exc.value, ConvNeXtExportError) and exc.value.exit_code == 2
    return message


# --- images ---------------------------------------------------------------------------------------------


def test_images_read_recursively_with_mixed_extensions_and_case(tmp_path: Path) -> None:
    names = ["a.jpg", "b.JPEG", "sub/c.PNG", "sub/d.bmp", "sub/deep/e.webp", "sub/deep/f.tif", "g.TIFF"]
    for i, name in enumerate(names):
        write_image(tmp_path / name, seed=i)
    (tmp_path / "notes.txt").write_text("not an image")
    write_image(tmp_path / ".hidden.png")
    write_image(tmp_path / ".cache" / "h.png")

    cset = load_calibration_set(tmp_path, CONFIG)

    assert cset.sources == sorted(str(tmp_path / n) for n in names)
    assert cset.inputs.shape == (len(names), 3, SIZE, SIZE) and cset.inputs.dtype == np.float32
    for row, source in zip(cset.inputs, cset.sources, strict=True):
        np.testing.assert_array_equal(row, preprocess_image(source, CONFIG))
    assert cset.skipped == [] and cset.available == len(names)


def test_single_image_file_is_a_source(tmp_path: Path) -> None:
    path = write_image(tmp_path / "one.png")
    assert load_calibration_set(path, CONFIG).sources == [str(path)]


# --- sampling -------------------------------------------------------------------------------------------


def test_sampling_is_seeded_sorted_and_reads_only_the_chosen_files(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[Path] = []
    real_load = cal.load_image
    monkeypatch.setattr(cal, "load_image", lambda p: opened.append(p) or real_load(p))

    first = load_calibration_set(folder, CONFIG, samples=5, seed=0)
    assert len(opened) == 5  # sampling happens before decoding
    again = load_calibration_set(folder, CONFIG, samples=5, seed=0)
    other = load_calibration_set(folder, CONFIG, samples=5, seed=1)

    assert first.sources == again.sources and first.digest == again.digest
    assert first.sources != other.sources
    everything = load_calibration_set(folder, CONFIG).sources
    assert first.sources == [s for s in everything if s in first.sources]  # candidate order, not draw order
    assert first.available == 20 and first.summary()["used"] == 5


def test_more_samples_than_available_gives_all(folder: Path) -> None:
    cset = load_calibration_set(folder, CONFIG, samples=1000, seed=3)
    assert cset.sources == load_calibration_set(folder, CONFIG).sources
    assert len(cset.sources) == 20


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "5"])
def test_invalid_sample_count(folder: Path, bad: object) -> None:
    with pytest.raises(InvalidOptionError, match="positive integer"):
        load_calibration_set(folder, CONFIG, samples=bad)  # type: ignore[arg-type]


def test_progress_reports_every_sample(folder: Path) -> None:
    calls: list[tuple[int, int]] = []
    load_calibration_set(folder, CONFIG, samples=6, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(i, 6) for i in range(1, 7)]


# --- unreadable files -----------------------------------------------------------------------------------


def test_unreadable_files_are_skipped_and_counted(folder: Path) -> None:
    bad = [write_corrupt(folder / "bad1.jpg"), write_corrupt(folder / "d1" / "bad2.png", "truncated")]
    cset = load_calibration_set(folder, CONFIG)

    assert len(cset.sources) == 20
    assert sorted(f for f, _ in cset.skipped) == sorted(str(p) for p in bad)
    assert all(why and str(folder) not in why for _, why in cset.skipped)  # the reason, not the path again
    summary = cset.summary()
    assert summary["used"] == 20 and summary["skipped"] == 2 and summary["available"] == 22
    assert {d["file"] for d in summary["skipped_files"]} == {str(p) for p in bad}


def test_unreadable_samples_are_replaced_in_seeded_order(tmp_path: Path) -> None:
    paths = [
        write_corrupt(tmp_path / f"{i:02d}.png") if i % 3 == 0 else write_image(tmp_path / f"{i:02d}.png", i)
        for i in range(12)
    ]
    cset = load_calibration_set(tmp_path, CONFIG, samples=5, seed=7)

    order = np.random.default_rng(7).permutation(12)  # the documented seeded order
    readable = [int(i) for i in order if int(i) % 3 != 0][:5]
    assert cset.sources == [str(paths[i]) for i in sorted(readable)]
    assert len(cset.sources) == 5 and cset.skipped  # replacements were needed
    assert all(int(Path(f).stem) % 3 == 0 for f, _ in cset.skipped)


def test_candidates_running_out_returns_what_was_readable(tmp_path: Path) -> None:
    for i in range(4):
        write_image(tmp_path / f"{i}.png", seed=i)
    write_corrupt(tmp_path / "x.png")
    cset = load_calibration_set(tmp_path, CONFIG, samples=4, seed=0)
    assert len(cset.sources) == 4 and len(cset.skipped) <= 1
    cset = load_calibration_set(tmp_path, CONFIG, samples=5, seed=0)  # == available: all, one skipped
    assert len(cset.sources) == 4 and len(cset.skipped) == 1


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(CalibrationDataError, match="does not exist") as exc:
        load_calibration_set(tmp_path / "nope", CONFIG)
    assert "nope" in one_line(exc)


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("no pictures here")
    with pytest.raises(CalibrationDataError, match="no calibration samples") as exc:
        load_calibration_set(tmp_path, CONFIG)
    one_line(exc)


def test_folder_of_corrupt_files(tmp_path: Path) -> None:
    write_corrupt(tmp_path / "a.jpg")
    write_corrupt(tmp_path / "b.png", "truncated")
    with pytest.raises(CalibrationDataError, match="none of the 2") as exc:
        load_calibration_set(tmp_path, CONFIG)
    assert "a.jpg" in one_line(exc)


def test_other_single_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "list.txt").write_text("a.jpg\n")
    with pytest.raises(CalibrationDataError, match="not a directory") as exc:
        load_calibration_set(tmp_path / "list.txt", CONFIG)
    one_line(exc)


# --- arrays ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_npy_of_preprocessed_inputs(tmp_path: Path, dtype: type) -> None:
    data = np.random.default_rng(0).standard_normal((4, 3, SIZE, SIZE)).astype(dtype)
    np.save(tmp_path / "inputs.npy", data)
    cset = load_calibration_set(tmp_path / "inputs.npy", CONFIG)
    assert cset.inputs.dtype == np.float32
    np.testing.assert_array_equal(cset.inputs, data.astype(np.float32))
    assert cset.sources == [f"{tmp_path / 'inputs.npy'}:{i}" for i in range(4)]


def test_npy_of_uint8_images_matches_the_same_pixels_as_image_files(tmp_path: Path) -> None:
    raw = np.stack([pixels(40, 50, seed) for seed in range(3)])
    np.save(tmp_path / "raw.npy", raw)
    (tmp_path / "png").mkdir()
    for i, image in enumerate(raw):
        Image.fromarray(image).save(tmp_path / "png" / f"{i}.png")
    from_array = load_calibration_set(tmp_path / "raw.npy", CONFIG)
    from_files = load_calibration_set(tmp_path / "png", CONFIG)
    np.testing.assert_array_equal(from_array.inputs, from_files.inputs)
    assert from_array.digest == from_files.digest


@pytest.mark.parametrize(
    ("shape", "dtype"),
    [
        ((2, 3, 16, 16), np.float32),  # preprocessed, wrong size
        ((2, SIZE, SIZE, 3), np.float32),  # float NHWC
        ((3, SIZE, SIZE), np.float32),  # no batch axis
        ((2, 3, 40, 40), np.uint8),  # uint8 NCHW
        ((2, 40, 40, 4), np.uint8),  # RGBA
        ((40, 40, 3), np.uint8),  # one image, no batch axis
        ((2, 3, SIZE, SIZE), np.int32),
        ((2, 3, SIZE, SIZE), np.bool_),
    ],
)
def test_wrong_arrays_are_refused_with_the_expected_shapes(tmp_path: Path, shape: tuple, dtype: type) -> None:
    np.save(tmp_path / "bad.npy", np.zeros(shape, dtype))
    write_image(tmp_path / "fine.png")
    with pytest.raises(CalibrationDataError) as exc:
        load_calibration_set(tmp_path, CONFIG)
    message = one_line(exc)
    assert "bad.npy" in message and str(shape) in message
    assert f"(N, 3, {SIZE}, {SIZE})" in message and "(N, H, W, 3)" in message


def test_object_arrays_are_refused_without_unpickling(tmp_path: Path) -> None:
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(CalibrationDataError, match="dtype object"):
        load_calibration_set(tmp_path / "obj.npy", CONFIG)


def test_non_finite_inputs_are_refused(tmp_path: Path) -> None:
    data = np.zeros((2, 3, SIZE, SIZE), np.float32)
    data[1, 0, 0, 0] = np.nan
    np.save(tmp_path / "nan.npy", data)
    with pytest.raises(CalibrationDataError, match=r"nan\.npy:1.*NaN") as exc:
        load_calibration_set(tmp_path / "nan.npy", CONFIG)
    one_line(exc)


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed])
def test_npz_every_array_counts(tmp_path: Path, save: object) -> None:
    floats = np.random.default_rng(1).standard_normal((2, 3, SIZE, SIZE)).astype(np.float32)
    raw = np.stack([pixels(30, 45, seed) for seed in range(3)])
    save(tmp_path / "mix.npz", floats=floats, raw=raw)  # type: ignore[operator]
    cset = load_calibration_set(tmp_path, CONFIG)

    npz = tmp_path / "mix.npz"
    assert cset.sources == [f"{npz}:floats:0", f"{npz}:floats:1"] + [f"{npz}:raw:{i}" for i in range(3)]
    np.testing.assert_array_equal(cset.inputs[:2], floats)
    np.testing.assert_array_equal(cset.inputs[2], preprocess_image(Image.fromarray(raw[0]), CONFIG))


def test_corrupt_array_file_is_skipped_like_an_image(tmp_path: Path) -> None:
    (tmp_path / "broken.npy").write_bytes(b"\x93NUMPY garbage")
    (tmp_path / "broken.npz").write_bytes(b"PK not a zip")
    write_image(tmp_path / "ok.png")
    cset = load_calibration_set(tmp_path, CONFIG)
    assert len(cset.sources) == 1
    assert sorted(Path(f).name for f, _ in cset.skipped) == ["broken.npy", "broken.npz"]


def test_images_and_arrays_mix_in_path_order_skipping_hidden(tmp_path: Path) -> None:
    write_image(tmp_path / "a.png")
    np.save(tmp_path / "b.npy", np.zeros((2, 3, SIZE, SIZE), np.float32))
    write_image(tmp_path / "c.png", seed=1)
    (tmp_path / ".git").mkdir()
    np.save(tmp_path / ".git" / "hidden.npy", np.zeros((1, 3, 1, 1), np.float32))  # would be refused if read
    np.save(tmp_path / "._b.npy", np.zeros((1,), np.float32))
    names = [Path(s).name for s in load_calibration_set(tmp_path, CONFIG).sources]
    assert names == ["a.png", "b.npy:0", "b.npy:1", "c.png"]


# --- digest ---------------------------------------------------------------------------------------------


def test_digest_follows_data_and_preprocessing_only(folder: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    base = load_calibration_set(folder, CONFIG).digest
    assert len(base) == 64 and load_calibration_set(folder, CONFIG).digest == base

    copy = tmp_path_factory.mktemp("copy")  # same pixels elsewhere: same key
    for path in folder.rglob("*.png"):
        target = copy / path.relative_to(folder)
        target.parent.mkdir(exist_ok=True)
        target.write_bytes(path.read_bytes())
    assert load_calibration_set(copy, CONFIG).digest == base

    assert load_calibration_set(folder, eval_config(SIZE, crop_pct=0.95)).digest != base
    assert load_calibration_set(folder, eval_config(SIZE, interpolation="bilinear")).digest != base
    assert load_calibration_set(folder, eval_config(64)).digest != base

    changed = pixels(40, 50, 0)
    changed[20, 25] ^= 1
    Image.fromarray(changed).save(copy / "d0" / "00.png")
    assert load_calibration_set(copy, CONFIG).digest != base


# --- reader ---------------------------------------------------------------------------------------------


def test_reader_yields_every_sample_in_batches_and_rewinds(folder: Path) -> None:
    quantization = pytest.importorskip("onnxruntime.quantization")
    cset = load_calibration_set(folder, CONFIG, samples=5)
    reader = calibration_reader(cset, batch_size=2)

    assert isinstance(reader, quantization.CalibrationDataReader) and isinstance(reader, cal.CalibrationReader)
    assert len(reader) == 3
    batches = list(reader)
    assert [set(b) for b in batches] == [{INPUT_NAME}] * 3
    assert [b[INPUT_NAME].shape[0] for b in batches] == [2, 2, 1]
    np.testing.assert_array_equal(np.concatenate([b[INPUT_NAME] for b in batches]), cset.inputs)
    assert reader.get_next() is None

    reader.rewind()
    np.testing.assert_array_equal(reader.get_next()[INPUT_NAME], cset.inputs[:2])
    reader.set_range(1, 2)  # ONNX Runtime's CalibStridedMinMax windows, in batches
    assert [b[INPUT_NAME].shape[0] for b in reader] == [2]


def test_reader_input_name_and_batch_size_checks(folder: Path) -> None:
    pytest.importorskip("onnxruntime.quantization")
    cset = load_calibration_set(folder, CONFIG, samples=3)
    assert list(calibration_reader(cset, input_name="x").get_next()) == ["x"]
    assert len(calibration_reader(cset)) == 3
    for bad in (0, -2, 1.5, True):
        with pytest.raises(InvalidOptionError, match="batch size"):
            calibration_reader(cset, batch_size=bad)  # type: ignore[arg-type]


def test_reader_drives_onnxruntime_static_quantization(folder: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    onnx = pytest.importorskip("onnx")
    quantization = pytest.importorskip("onnxruntime.quantization")
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", [INPUT_NAME, "w"], ["y"], pads=[1, 1, 1, 1])],
        "tiny",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4, SIZE, SIZE])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    out = tmp_path_factory.mktemp("q")
    onnx.save(model, out / "fp32.onnx")

    reader = calibration_reader(load_calibration_set(folder, CONFIG, samples=4), batch_size=2)
    quantization.quantize_static(out / "fp32.onnx", out / "int8.onnx", reader, op_types_to_quantize=["Conv"])
    ops = {node.op_type for node in onnx.load(out / "int8.onnx").graph.node}
    assert "QuantizeLinear" in ops


# --- committed samples and imports ----------------------------------------------------------------------


def test_committed_samples_load_with_the_real_transform() -> None:
    cset = load_calibration_set(SAMPLE_PHOTOS, eval_config(224))
    assert len(cset.sources) >= 5 and cset.skipped == []
    assert cset.inputs.shape[1:] == (3, 224, 224) and np.isfinite(cset.inputs).all()
    licence = (SAMPLE_PHOTOS / "LICENSE.md").read_text(encoding="utf-8")
    assert all(f"`{Path(s).name}`" in licence for s in cset.sources)
    assert sum(p.stat().st_size for p in SAMPLE_PHOTOS.iterdir()) < 2_000_000


def test_import_loads_neither_onnxruntime_nor_torch() -> None:
    code = (
        "import sys, convnext_export.precision.calibration\n"
        "heavy = [m for m in ('onnxruntime', 'torch', 'onnx') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


# --- an empty folder, and the held-out split -----------------------------------------------------------------------


def test_empty_calibration_folder_raises(tmp_path: Path) -> None:
    with pytest.raises(CalibrationDataError):
        load_calibration_set(tmp_path, eval_config(32))


def test_held_out_split_is_deterministic_and_disjoint() -> None:
    calibration, held = load_calibration_split(TEST_SET, eval_config(32))
    again, held_again = load_calibration_split(TEST_SET, eval_config(32), seed=5)
    assert calibration.sources == again.sources and held.sources == held_again.sources  # files decide, not the seed
    assert not set(calibration.sources) & set(held.sources)
    assert len(calibration.sources) == len(held.sources) == 180
    assert {Path(s).parent.name for s in held.sources} == {str(d) for d in range(10)}  # every class held out
