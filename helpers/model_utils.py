"""Running a student's model from a helper without changing it: which device it lives on, and
a block in which it is in a chosen mode (evaluation by default), restored afterwards. Shared
by the checks and the plots, which must leave a model exactly as they found it."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from itertools import chain

import torch
from torch import nn

__all__ = ["model_device", "temporary_mode"]


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (or buffer); the CPU for a model with neither."""
    for tensor in chain(model.parameters(), model.buffers()):
        return tensor.device
    return torch.device("cpu")


@contextmanager
def temporary_mode(model: nn.Module, train: bool = False) -> Iterator[nn.Module]:
    """``with temporary_mode(model):`` runs the block with ``model`` in evaluation mode (or
    training mode with ``train=True``) and puts back the mode it had, even on an error."""
    was_training = model.training
    model.train(train)
    try:
        yield model
    finally:
        model.train(was_training)
