"""Weights: safe reading, conversion from timm and transformers, and the published checkpoints."""

from convnext_export.weights.load import Checkpoint, WeightsInfo, load_checkpoint, load_state_dict_strict

__all__ = ["Checkpoint", "WeightsInfo", "load_checkpoint", "load_state_dict_strict"]
