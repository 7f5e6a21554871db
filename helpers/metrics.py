"""Metrics the course writes by hand to teach them (tested against torchmetrics)."""
from __future__ import annotations

import numpy as np
import torch


def _as_tensor(values, name: str) -> torch.Tensor:
    if isinstance(values, torch.Tensor):
        return values.detach().cpu()
    if isinstance(values, (np.ndarray, list, tuple)):
        return torch.as_tensor(np.asarray(values))
    raise TypeError(f"{name} must be a tensor, NumPy array or list, got {type(values).__name__}")


def accuracy_fn(y_true, y_pred) -> float:
    """Percentage of predictions equal to the true labels, e.g. ``87.5``.

    ``y_pred`` must hold *labels* (0/1 or class indices), not logits or probabilities, and
    have exactly the shape of ``y_true``. A shape mismatch raises instead of broadcasting:
    comparing (N, 1) predictions with (N,) labels would silently compare every prediction
    with every label (an N x N matrix) and report about 50 % whatever the model does.
    """
    y_true = _as_tensor(y_true, "y_true")
    y_pred = _as_tensor(y_pred, "y_pred")
    if y_true.shape != y_pred.shape:
        raise ValueError(_shape_mismatch_message(y_true.shape, y_pred.shape))
    if y_true.numel() == 0:
        raise ValueError("accuracy_fn: got empty tensors; there is nothing to score.")
    if y_pred.is_floating_point() and not torch.all(y_pred == y_pred.round()):
        raise ValueError(
            "accuracy_fn: y_pred holds non-integer values (logits or probabilities?). "
            "Turn them into labels first: probs > 0.5 if your model already ends in a sigmoid, "
            "torch.sigmoid(logits) > 0.5 if it outputs logits, logits.argmax(dim=1) for multiclass."
        )
    correct = torch.eq(y_true, y_pred.to(y_true.dtype)).sum().item()
    return correct / y_true.numel() * 100


def _shape_mismatch_message(true_shape: torch.Size, pred_shape: torch.Size) -> str:
    message = (f"accuracy_fn: y_true has shape {tuple(true_shape)} but y_pred has shape "
               f"{tuple(pred_shape)}; they must be equal.")
    try:
        broadcast = tuple(torch.broadcast_shapes(true_shape, pred_shape))
        message += (f" Compared element-wise they would broadcast to shape {broadcast} and "
                    "give a meaningless accuracy.")
    except RuntimeError:
        pass
    if true_shape.numel() == pred_shape.numel():
        message += (" They hold the same number of values: reshape one to match the other,"
                    " usually the labels to the model's output shape (y_true.view_as(y_pred),"
                    " e.g. y.unsqueeze(1)), or the predictions to the labels' (y_pred.squeeze(1)).")
    return message
