"""The training loop: loss goes down, the schedule is the cosine formula, runs are reproducible, checkpoints
appear when asked, weight decay skips biases/norms/layer scale, and labels travel inside the safetensors file.

Everything trains the tiny `test` variant on 60 synthetic images for a few steps: fast, but every check can fail.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from safetensors import safe_open

import convnext_export
from convnext_export.model.train import (
    EpochRecord,
    TrainConfig,
    cosine_lr,
    evaluate,
    parameter_groups,
    save_checkpoint,
    train,
)

NUM_CLASSES = 3
SAMPLES = 60


def make_model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return convnext_export.create_model("test", num_classes=NUM_CLASSES, image_size=32, patch_size=2)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    """Three learnable classes: a bright square in a different corner of each image, plus noise."""
    rng = np.random.default_rng(0)
    y = np.arange(SAMPLES) % NUM_CLASSES
    x = rng.normal(0.0, 0.3, (SAMPLES, 3, 32, 32)).astype(np.float32)
    corners = [(0, 0), (0, 16), (16, 0)]
    for i, label in enumerate(y):
        top, left = corners[label]
        x[i, :, top : top + 16, left : left + 16] += 2.0
    return x, y


def test_loss_decreases_and_records_describe_each_epoch(data: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = data
    model = make_model()
    seen: list[EpochRecord] = []
    records = train(model, x, y, TrainConfig(epochs=2, batch_size=16), val_x=x, val_y=y, progress=seen.append)
    assert seen == records
    assert [r.epoch for r in records] == [1, 2]
    assert records[1].train_loss < records[0].train_loss
    assert all(0.0 <= r.train_accuracy <= 1.0 and r.val_accuracy is not None for r in records)
    assert not model.training  # returned ready for evaluation and export


def test_training_learns_the_synthetic_task(data: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = data
    model = make_model()
    before = evaluate(model, x, y)
    train(model, x, y, TrainConfig(epochs=10, batch_size=16))
    assert evaluate(model, x, y) > max(before, 0.9)


def _record_step_lrs(monkeypatch: pytest.MonkeyPatch) -> list[list[float]]:
    """Spy on AdamW.step: the lr of every param group at every step the loop really takes."""
    lrs: list[list[float]] = []
    original = torch.optim.AdamW.step

    def step(self: torch.optim.AdamW, *args: object, **kwargs: object) -> object:
        lrs.append([group["lr"] for group in self.param_groups])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", step)
    return lrs


def test_cosine_schedule_per_step(data: tuple[np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = data
    lrs = _record_step_lrs(monkeypatch)
    base = 4e-3
    records = train(make_model(), x, y, TrainConfig(epochs=2, batch_size=16, lr=base))
    steps_per_epoch = math.ceil(SAMPLES / 16)  # 4: the last batch is partial, not dropped
    total = 2 * steps_per_epoch
    assert len(lrs) == total
    assert all(len(set(group_lrs)) == 1 for group_lrs in lrs)  # decay and no-decay groups move together
    applied = [group_lrs[0] for group_lrs in lrs]
    assert applied[0] == pytest.approx(base)  # no warmup: full lr on the first step
    assert applied[-1] == pytest.approx(0.5 * base * (1 + math.cos(math.pi * (total - 1) / total)))
    assert applied == pytest.approx([cosine_lr(s, total, base) for s in range(total)])
    assert all(a > b for a, b in zip(applied[:-1], applied[1:], strict=True))
    assert [r.lr for r in records] == pytest.approx([applied[steps_per_epoch - 1], applied[-1]])


def test_warmup_is_linear_then_cosine(data: tuple[np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = data
    lrs = _record_step_lrs(monkeypatch)
    base = 1e-3
    train(make_model(), x, y, TrainConfig(epochs=3, batch_size=30, lr=base, warmup_epochs=1))
    applied = [group_lrs[0] for group_lrs in lrs]  # 2 steps per epoch: 2 warmup steps, then 4 cosine steps
    assert applied[:3] == pytest.approx([base / 2, base, base])
    assert applied[-1] == pytest.approx(0.5 * base * (1 + math.cos(math.pi * 3 / 4)))


def test_cosine_lr_rejects_steps_outside_the_schedule() -> None:
    with pytest.raises(ValueError, match="outside"):
        cosine_lr(10, 10, 1e-3)


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_same_seed_gives_identical_weights(data: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = data
    runs = []
    for seed in (0, 0, 1):
        model = make_model()
        config = TrainConfig(epochs=2, batch_size=16, seed=seed)
        train(model, x, y, config, augment=lambda b, g: b + 0.1 * torch.randn(b.shape, generator=g))
        runs.append(_weights(model))
    assert runs[0].keys() == runs[1].keys()
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
    assert not all(torch.equal(runs[0][k], runs[2][k]) for k in runs[0])  # the seed does reach the run


@pytest.mark.parametrize(("every", "expected"), [(2, ["epoch_002", "epoch_003"]), (0, ["epoch_003"])])
def test_checkpoints_every_n_epochs_and_the_last(
    data: tuple[np.ndarray, np.ndarray], tmp_path: pytest.TempPathFactory, every: int, expected: list[str]
) -> None:
    x, y = data
    model = make_model()
    train(model, x, y, TrainConfig(epochs=3, batch_size=30, checkpoint_every=every, checkpoint_dir=tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{name}.safetensors" for name in expected]
    final = convnext_export.create_model(weights=tmp_path / "epoch_003.safetensors")
    assert all(torch.equal(final.state_dict()[k], v) for k, v in model.state_dict().items())


def test_weight_decay_skips_biases_norms_and_layer_scale() -> None:
    model = make_model()
    decay, no_decay = parameter_groups(model, 0.05)
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    all_names = {name for name, _ in model.named_parameters()}
    assert set(decay["names"]) | set(no_decay["names"]) == all_names
    assert not set(decay["names"]) & set(no_decay["names"])
    norms = {
        f"{module_name}.{p}"
        for module_name, module in model.named_modules()
        if isinstance(module, torch.nn.LayerNorm)
        for p in ("weight", "bias")
    }
    gammas = {name for name in all_names if name.endswith("gamma")}
    biases = {name for name in all_names if name.endswith("bias")}
    assert gammas and norms and biases
    assert gammas | norms | biases == set(no_decay["names"])
    assert "head.weight" in decay["names"] and "stages.0.0.pwconv1.weight" in decay["names"]
    assert "downsample_layers.0.0.weight" in decay["names"]  # the stem convolution decays
    for group in (decay, no_decay):
        assert [id(p) for p in group["params"]] == [id(dict(model.named_parameters())[n]) for n in group["names"]]


def test_train_uses_the_decay_groups(data: tuple[np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = data
    made: list[torch.optim.AdamW] = []
    original_init = torch.optim.AdamW.__init__

    def init(self: torch.optim.AdamW, *args: object, **kwargs: object) -> None:
        original_init(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(torch.optim.AdamW, "__init__", init)
    model = make_model()
    train(model, x, y, TrainConfig(epochs=1, batch_size=30, weight_decay=0.07))
    (optimizer,) = made
    groups = {g["weight_decay"]: set(g["names"]) for g in optimizer.param_groups}
    expected = parameter_groups(model, 0.07)
    assert groups == {0.07: set(expected[0]["names"]), 0.0: set(expected[1]["names"])}


def test_save_checkpoint_stores_labels_and_loads_back(tmp_path: pytest.TempPathFactory) -> None:
    model = make_model()
    path = save_checkpoint(model, tmp_path / "sub" / "m.safetensors", labels=["cat", "dog", "bird"], extra={"k": "v"})
    assert path == tmp_path / "sub" / "m.safetensors"
    assert [p.name for p in path.parent.iterdir()] == ["m.safetensors"]  # no temporary file left behind
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata()
    assert json.loads(metadata["labels"]) == ["cat", "dog", "bird"]
    assert metadata["k"] == "v"
    loaded = convnext_export.create_model(weights=path, image_size=32)
    assert loaded.config.num_classes == NUM_CLASSES
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        assert torch.equal(loaded(x), model(x))


def test_save_checkpoint_without_labels_has_no_labels_key(tmp_path: pytest.TempPathFactory) -> None:
    path = save_checkpoint(make_model(), tmp_path / "m.safetensors")
    with safe_open(str(path), framework="pt") as f:
        assert "labels" not in (f.metadata() or {})


def test_evaluate_restores_the_mode_and_counts_top1(data: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = data
    model = make_model().train()
    with torch.inference_mode():
        predictions = model.eval()(torch.from_numpy(x)).argmax(1).numpy()
    model.train()
    assert evaluate(model, x, y, batch_size=7) == pytest.approx(float(np.mean(predictions == y)))
    assert model.training


@pytest.mark.parametrize(
    ("x_shape", "y", "match"),
    [((4, 3, 32, 32), np.zeros(3, np.int64), "labels"), ((4, 32, 32), np.zeros(4, np.int64), "NCHW")],
)
def test_bad_inputs_fail_before_training(x_shape: tuple[int, ...], y: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        train(make_model(), np.zeros(x_shape, np.float32), y, TrainConfig(epochs=1))


def test_config_is_checked() -> None:
    with pytest.raises(ValueError, match="warmup"):
        TrainConfig(epochs=2, warmup_epochs=2)


def test_equal_weights_give_byte_equal_files(tmp_path: pytest.TempPathFactory) -> None:
    """safetensors orders its metadata by hash; the header is sorted so a file's sha256 is stable."""
    model = make_model()
    extra = {f"key{i}": f"value{i}" for i in range(8)}
    first = save_checkpoint(model, tmp_path / "a.safetensors", labels=["a", "b", "c"], extra=extra)
    second = save_checkpoint(
        model, tmp_path / "b.safetensors", labels=["a", "b", "c"], extra=dict(reversed(extra.items()))
    )
    assert first.read_bytes() == second.read_bytes()
    with safe_open(str(first), framework="pt") as f:
        assert f.metadata()["key7"] == "value7"
