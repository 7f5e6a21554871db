import random

import numpy as np
import pytest
import torch

from helpers import get_device, set_seed


def _draw():
    return random.random(), float(np.random.rand()), torch.rand(3).tolist(), torch.nn.Linear(2, 2).weight.tolist()


def test_set_seed_repeats_python_numpy_and_torch():
    set_seed(7)
    first = _draw()
    set_seed(7)
    assert _draw() == first
    set_seed(8)
    assert _draw() != first


def test_set_seed_rejects_non_integers():
    with pytest.raises(TypeError):
        set_seed(1.5)


def test_get_device_is_usable():
    device = get_device()
    assert isinstance(device, torch.device)
    assert torch.zeros(1, device=device).device.type == device.type
