"""Seeding and device selection: the two lines every lab starts with."""
from __future__ import annotations

import os
import random

import numpy as np
import torch


def set_seed(seed: int = 42) -> None:
    """Seed Python, NumPy and PyTorch (CPU and CUDA) so a lab's results repeat run to run.

    Also asks cuDNN for deterministic kernels. It does not make results identical across
    machines or library versions, which is why the labs' thresholds keep a margin.
    """
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def get_device() -> torch.device:
    """Return ``cuda`` when a GPU is available, else ``mps`` on Apple silicon, else ``cpu``.

    Device-agnostic code (``model.to(device)``, ``X.to(device)``) runs unchanged everywhere.
    """
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")
