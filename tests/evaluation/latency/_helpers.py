"""Stand-in runners for the latency tests: they record every batch and return zeros, instantly."""

from __future__ import annotations

import numpy as np

from convnext_export.runners import Runner


class FakeRunner(Runner):
    """Records every batch it is given; `limit` stops a loop that would never end."""

    name = "fake"
    input_name = "images"
    output_names = ("logits",)
    input_shape = (None, 3, 8, 8)

    def __init__(self, limit: int = 100_000) -> None:
        self.calls: list[np.ndarray] = []
        self.limit = limit

    def _infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        self.calls.append(batch)
        if len(self.calls) > self.limit:
            raise RuntimeError("the timed loop did not stop")
        return {"logits": np.zeros((batch.shape[0], 2), np.float32)}

    def _release(self) -> None:
        pass


class FakeGpuRunner(FakeRunner):
    """Also reports a GPU compute time, as TrtRunner.compute_only does (milliseconds)."""

    def __init__(self) -> None:
        super().__init__()
        self.compute_calls = 0

    def compute_only(self, batch: np.ndarray) -> float:
        self.compute_calls += 1
        return 2.0
