"""TorchRunner: the module in eval mode, and a clear error where CUDA is asked for but missing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from convnext_export.contract import LOGITS_NAME
from convnext_export.errors import InvalidOptionError
from convnext_export.runners import TorchRunner


def test_torch_runner_matches_the_module_in_eval_mode(model: torch.nn.Module, batch: np.ndarray) -> None:
    model.train()
    runner = TorchRunner(model)
    assert not model.training
    with torch.no_grad():
        direct = model(torch.from_numpy(batch)).numpy()
    np.testing.assert_array_equal(runner.infer(batch)[LOGITS_NAME], direct)


def test_cuda_without_cuda_is_a_user_error(model: torch.nn.Module) -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here: the error path cannot be reached")
    with pytest.raises(InvalidOptionError, match="CUDA is not available"):
        TorchRunner(model, device="cuda")
    with pytest.raises(InvalidOptionError, match="valid: cpu, cuda"):
        TorchRunner(model, device="tpu:7")
