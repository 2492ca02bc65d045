"""Labelled image folders: a labels file maps folders to classes, and model labels in another order are refused.

The dataset errors that `check` reports as one-line usage errors are tested through the CLI
(tests/cli/test_check_cmd.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from convnext_export.data.datasets import Dataset, DatasetError, check_classes, load_dataset
from convnext_export.data.preprocess import eval_config
from tests._paths import DIGITS

TEST_SET = DIGITS / "test"


def test_labels_file_maps_folders_to_classes(tmp_path: Path) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(str(d) for d in range(10)) + "\n")
    dataset = load_dataset(TEST_SET, eval_config(32), labels_file=labels, limit=20)
    assert dataset.classes == [str(d) for d in range(10)] and len(dataset.targets) == 20
    assert sorted(set(dataset.targets.tolist())) == list(range(10))  # --limit keeps every class
    assert [int(f.parent.name) for f in dataset.files] == dataset.targets.tolist()


def test_model_labels_in_another_order_than_the_folders_are_refused() -> None:
    dataset = Dataset(np.zeros((2, 3, 32, 32), np.float32), np.array([0, 1]), ["cat", "dog"], [], Path("d"))
    check_classes(dataset, 2, ["cat", "dog"])
    with pytest.raises(DatasetError, match="--labels"):
        check_classes(dataset, 2, ["dog", "cat"])  # sorted folder names would swap the model's classes
