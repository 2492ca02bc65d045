"""Labelled image folders: how folders map to classes (sorted names, or a labels file naming each folder), model
labels in another order refused, scanning that reads no image, and batches that stream in bounded memory.

The dataset errors that `check` reports as one-line usage errors are tested through the CLI
(tests/cli/test_check_cmd.py)."""

from __future__ import annotations

import gc
import shutil
import weakref
from pathlib import Path

import numpy as np
import pytest

from convnext_export.data import datasets
from convnext_export.data.datasets import (
    BatchStream,
    DatasetError,
    check_classes,
    dataset_digests,
    load_dataset,
)
from convnext_export.data.preprocess import eval_config, find_images, preprocess_batch
from tests._paths import DIGITS

TEST_SET = DIGITS / "test"


def _folders(tmp_path: Path, names: list[str], per_class: int = 1) -> Path:
    """A dataset of copies of digit scans, one folder per name."""
    source = sorted((TEST_SET / "0").glob("*.png"))
    root = tmp_path / "data"
    for name in names:
        (root / name).mkdir(parents=True)
        for image in source[:per_class]:
            shutil.copy(image, root / name / image.name)
    return root


def test_labels_file_maps_folders_to_classes(tmp_path: Path) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(str(d) for d in range(10)) + "\n")
    dataset = load_dataset(TEST_SET, eval_config(32), labels_file=labels, limit=20)
    assert dataset.classes == [str(d) for d in range(10)] and len(dataset.targets) == 20
    assert sorted(set(dataset.targets.tolist())) == list(range(10))  # --limit keeps every class
    assert [int(f.parent.name) for f in dataset.files] == dataset.targets.tolist()


def test_a_folder_takes_the_line_of_its_label_not_its_sorted_position(tmp_path: Path) -> None:
    root = _folders(tmp_path, ["cat", "dog"])
    labels = tmp_path / "labels.txt"
    labels.write_text("dog\nbird\ncat\n")  # a label without a folder is fine: the dataset covers some classes
    dataset = load_dataset(root, eval_config(32), labels_file=labels)
    assert dataset.classes == ["dog", "bird", "cat"]
    assert {f.parent.name: int(t) for f, t in zip(dataset.files, dataset.targets, strict=True)} == {"cat": 2, "dog": 0}


def test_folders_that_are_not_labels_are_named(tmp_path: Path) -> None:
    root = _folders(tmp_path, ["cat", "dgo"])
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ndog\n")
    with pytest.raises(DatasetError, match=r"class folder\(s\) 'dgo' .* are not labels in .*labels\.txt"):
        load_dataset(root, eval_config(32), labels_file=labels)


def test_folders_named_by_index_against_a_labels_file_of_names_say_so(tmp_path: Path) -> None:
    root = _folders(tmp_path, ["0", "1"])
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ndog\n")
    with pytest.raises(DatasetError, match="named by label, not by class index"):
        load_dataset(root, eval_config(32), labels_file=labels)


def test_a_label_named_twice_is_refused(tmp_path: Path) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ndog\ncat\n")
    with pytest.raises(DatasetError, match=r"names 'cat' twice \(lines 1 and 3\)"):
        load_dataset(_folders(tmp_path, ["cat"]), eval_config(32), labels_file=labels)


def test_numbered_folders_whose_sorted_order_is_not_numeric_need_a_labels_file(tmp_path: Path) -> None:
    """'10' sorts before '2': sorted names and numbers give different classes, so check does not guess."""
    root = _folders(tmp_path, [str(d) for d in range(11)])
    with pytest.raises(DatasetError, match=r"'10' at class 2 where the numbers put '2'.*--labels"):
        load_dataset(root, eval_config(32))
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(str(d) for d in range(11)))
    dataset = load_dataset(root, eval_config(32), labels_file=labels)
    assert {f.parent.name: int(t) for f, t in zip(dataset.files, dataset.targets, strict=True)}["10"] == 10


def test_model_labels_in_another_order_than_the_folders_are_refused(tmp_path: Path) -> None:
    dataset = load_dataset(_folders(tmp_path, ["cat", "dog"]), eval_config(32))
    check_classes(dataset, 2, ["cat", "dog"])
    with pytest.raises(DatasetError, match="sorted folder names would misnumber"):
        check_classes(dataset, 2, ["dog", "cat"])  # sorted folder names would swap the model's classes


def test_a_labels_file_with_the_model_labels_in_another_order_is_refused(tmp_path: Path) -> None:
    """The issue's 0%-top-1 pass: the right names in the wrong order. Folder names match, indices do not."""
    labels = tmp_path / "labels.txt"
    labels.write_text("dog\ncat\n")
    dataset = load_dataset(_folders(tmp_path, ["cat", "dog"]), eval_config(32), labels_file=labels)
    with pytest.raises(DatasetError, match=r"lists the model's labels in another order \(class 0 is 'dog' here"):
        check_classes(dataset, 2, ["cat", "dog"])
    check_classes(dataset, 2, ["dog", "cat"])  # the model's own order
    check_classes(dataset, 2, ["n02", "n01"])  # other names (e.g. WordNet ids for folder names): the data decide


def test_scanning_reads_no_image(tmp_path: Path) -> None:
    root = tmp_path / "data"
    (root / "a").mkdir(parents=True)
    (root / "a" / "broken.png").write_bytes(b"not a png")
    dataset = load_dataset(root, eval_config(32))
    assert [f.name for f in dataset.files] == ["broken.png"]
    with pytest.raises(DatasetError, match="cannot read image .*broken.png"):
        list(dataset.batches(4))


def test_digests_are_the_contents_and_computed_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _folders(tmp_path, ["a", "b"], per_class=3)
    files = find_images(root)
    dataset = load_dataset(root, eval_config(32))
    calls = []
    monkeypatch.setattr(datasets, "dataset_digests", lambda *a: calls.append(a) or dataset_digests(*a))
    first = dataset.sha256, dataset.files_sha256
    assert dataset.sha256 == first[0] and len(calls) == 1
    edited = files[0].read_bytes()
    files[0].write_bytes(edited[:-1] + bytes([edited[-1] ^ 1]))  # same size, same name, other contents
    again = load_dataset(root, eval_config(32))
    assert again.sha256 != first[0] and again.files_sha256 == first[1]


def test_batches_are_the_preprocessed_images_in_file_order() -> None:
    dataset = load_dataset(TEST_SET, eval_config(32), limit=70)
    expected = preprocess_batch(dataset.files, eval_config(32))
    stream = dataset.batches(16, workers=3)
    batches = list(stream)
    assert (
        [len(b) for b in batches] == [16, 16, 16, 16, 6] == [len(b) for b in np.array_split(expected, [16, 32, 48, 64])]
    )
    np.testing.assert_array_equal(np.concatenate(batches), expected)  # bit for bit, whatever thread made each image


def test_the_stream_never_holds_more_than_its_prefetch(tmp_path: Path) -> None:
    """Memory bounded by batches, not images: of 45 batches, never more than prefetch + 1 are alive (the one the
    consumer holds and those being made), counted both by the stream and by the arrays themselves."""
    files = find_images(TEST_SET)[:90]
    stream = BatchStream(files, eval_config(32), 2, workers=4, prefetch=3)
    alive: list[weakref.ref] = []
    most_alive = 0
    for batch in stream:
        alive.append(weakref.ref(batch))
        del batch
        gc.collect()
        most_alive = max(most_alive, sum(r() is not None for r in alive))
    assert len(alive) == 45
    assert stream.peak_live == 4 and most_alive <= 4  # prefetch 3 + the consumer's
    assert stream.live == 0


def test_a_failing_image_stops_the_stream_and_its_workers(tmp_path: Path) -> None:
    root = _folders(tmp_path, ["a"], per_class=20)
    (root / "a" / "0000.png").write_bytes(b"broken")
    stream = load_dataset(root, eval_config(32)).batches(4, workers=2)
    with pytest.raises(DatasetError, match="0000.png"):
        list(stream)
    assert stream.live == 0


def test_an_unreadable_file_while_hashing_is_a_dataset_error(tmp_path: Path) -> None:
    root = _folders(tmp_path, ["a"])
    files = find_images(root)
    files[0].unlink()
    with pytest.raises(DatasetError, match="cannot read image"):
        dataset_digests(root, files)
