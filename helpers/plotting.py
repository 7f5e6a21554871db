"""Plots the labs use: decision boundaries, regression predictions, loss/accuracy curves,
image grids with class names."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import ListedColormap
from torch import nn

from helpers.data import CIFAR10_CLASSES
from helpers.model_utils import model_device, temporary_mode

# Okabe-Ito colours: distinguishable for the common forms of colour blindness.
CLASS_COLOURS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00",
                 "#F0E442", "#000000", "#999999", "#882255"]


def _to_numpy(values, name: str) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().numpy()
    if isinstance(values, (np.ndarray, list, tuple)):
        return np.asarray(values)
    raise TypeError(f"{name} must be a tensor, NumPy array or list, got {type(values).__name__}")


def plot_decision_boundary(model: nn.Module, X, y, ax=None, *, outputs: str = "logits",
                           resolution: int = 201, class_names: Sequence[str] | None = None,
                           title: str | None = None):
    """Colour the plane by the class ``model`` predicts and scatter the points ``X`` on top.

    - ``X``: (N, 2) features and ``y``: (N,) or (N, 1) labels, as tensors or NumPy arrays.
    - Binary models return one value per point: a logit (``outputs="logits"``, thresholded
      at 0 i.e. sigmoid 0.5) or a probability (``outputs="probabilities"``, thresholded at
      0.5). Multiclass models return one score per class and the argmax is plotted.
    - The model is evaluated where it lives (CPU or GPU) in eval mode without gradient
      tracking, then put back in the mode it was in; it is never moved.

    Returns the matplotlib Axes.
    """
    if outputs not in ("logits", "probabilities"):
        raise ValueError(f"outputs must be 'logits' or 'probabilities', got {outputs!r}")
    X_np = _to_numpy(X, "X").astype(np.float32)
    y_np = _to_numpy(y, "y").reshape(-1)
    if X_np.ndim != 2 or X_np.shape[1] != 2:
        raise ValueError(f"X must have shape (N, 2) to be drawn in the plane, got {X_np.shape}")
    if len(y_np) != len(X_np):
        raise ValueError(f"X has {len(X_np)} rows but y has {len(y_np)} labels")

    pad = 0.1 * (X_np.max(axis=0) - X_np.min(axis=0)) + 1e-3
    x_min, y_min = X_np.min(axis=0) - pad
    x_max, y_max = X_np.max(axis=0) + pad
    xx, yy = np.meshgrid(np.linspace(x_min, x_max, resolution),
                         np.linspace(y_min, y_max, resolution))
    grid = torch.from_numpy(np.column_stack([xx.ravel(), yy.ravel()]).astype(np.float32))

    with temporary_mode(model), torch.inference_mode():
        scores = model(grid.to(model_device(model))).cpu()

    if scores.ndim == 1 or scores.shape[-1] == 1:
        scores = scores.reshape(-1)
        threshold = 0.0 if outputs == "logits" else 0.5
        predicted = (scores > threshold).long()
        n_classes = 2
    else:
        predicted = scores.argmax(dim=-1)
        n_classes = scores.shape[-1]
    n_classes = max(n_classes, int(y_np.max()) + 1 if len(y_np) else 0)
    colours = CLASS_COLOURS[:n_classes]

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 5))
    ax.contourf(xx, yy, predicted.numpy().reshape(xx.shape), levels=np.arange(n_classes + 1) - 0.5,
                cmap=ListedColormap(colours), alpha=0.25)
    names = list(class_names) if class_names is not None else [f"class {k}" for k in range(n_classes)]
    size = 80 if len(X_np) <= 50 else 14  # a truth table needs visible dots; 2000 points do not
    for k in range(n_classes):
        mask = y_np == k
        if mask.any():
            ax.scatter(X_np[mask, 0], X_np[mask, 1], s=size, color=colours[k], edgecolors="white",
                       linewidths=0.5, label=names[k], zorder=3)
    ax.set_xlim(x_min, x_max)
    ax.set_ylim(y_min, y_max)
    ax.set_xlabel("feature 0")
    ax.set_ylabel("feature 1")
    if title:
        ax.set_title(title)
    ax.legend(loc="best", fontsize="small", framealpha=0.8)
    return ax


def plot_predictions(train_data, train_labels, test_data, test_labels, predictions=None, ax=None):
    """Scatter a 1-D regression problem: training points, test points and the model's test
    predictions, so "does the model fit the line?" can be answered at a glance.

    Returns the matplotlib Axes.
    """
    series = [(train_data, train_labels, "training data", "#0072B2"),
              (test_data, test_labels, "test data", "#009E73")]
    if predictions is not None:
        series.append((test_data, predictions, "predictions", "#D55E00"))
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4.5))
    for xs, ys, label, colour in series:
        xs_np = _to_numpy(xs, label).reshape(-1)
        ys_np = _to_numpy(ys, label).reshape(-1)
        if xs_np.shape != ys_np.shape:
            raise ValueError(f"{label}: {xs_np.size} x values but {ys_np.size} y values")
        ax.scatter(xs_np, ys_np, s=10, color=colour, label=label)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.legend()
    return ax


def plot_loss_curves(history: Mapping[str, Sequence[float]], epochs: Sequence[int] | None = None):
    """Plot training curves from a history dict.

    Recognised keys: ``train_loss``, ``test_loss`` (left panel) and ``train_acc``,
    ``test_acc`` (right panel, drawn only when present); any key may be missing except that
    at least one loss is needed. ``epochs`` gives the x-values when curves were recorded
    every few epochs (e.g. ``range(0, 100, 10)``); by default 0, 1, 2, ...

    Returns the matplotlib Figure.
    """
    if not isinstance(history, Mapping):
        raise TypeError("history must be a dict such as {'train_loss': [...], 'test_loss': [...]}")
    losses = [k for k in ("train_loss", "test_loss") if k in history]
    accs = [k for k in ("train_acc", "test_acc") if k in history]
    if not losses:
        raise ValueError(f"history needs 'train_loss' or 'test_loss'; it has {sorted(history)}")
    lengths = {k: len(history[k]) for k in losses + accs}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"all curves must have the same length, got {lengths}")
    n = next(iter(lengths.values()))
    xs = list(epochs) if epochs is not None else list(range(n))
    if len(xs) != n:
        raise ValueError(f"epochs has {len(xs)} values but the curves have {n}")

    fig, axes = plt.subplots(1, 2 if accs else 1, figsize=(11 if accs else 6, 4), squeeze=False)
    for panel, keys, ylabel in ((axes[0, 0], losses, "loss"),
                                (axes[0, -1] if accs else None, accs, "accuracy (%)")):
        if panel is None:
            continue
        for key in keys:
            values = [float(v) for v in history[key]]
            panel.plot(xs, values, label=key.replace("_", " "),
                       linestyle="-" if key.startswith("train") else "--")
        panel.set_xlabel("epoch")
        panel.set_ylabel(ylabel)
        panel.legend()
    fig.tight_layout()
    return fig


def plot_image_grid(images, labels=None, class_names: Sequence[str] = CIFAR10_CLASSES, *,
                    predictions=None, mean=None, std=None, ncols: int = 8,
                    title: str | None = None, size: float = 1.4):
    """Show images in a grid with their class names; returns the matplotlib Figure.

    - ``images``: ``(N, 3, H, W)`` tensor, uint8 (0-255) or float. Give ``mean`` and ``std``
      (per channel) when the images were normalized, to undo it for display.
    - ``labels``: true labels (titles); with ``predictions`` each title reads
      ``predicted (true)``, green when right and red when wrong.
    """
    images = torch.as_tensor(images).detach().cpu()
    if images.ndim == 3:
        images = images.unsqueeze(0)
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must have shape (N, 3, H, W), got {tuple(images.shape)}")
    if images.dtype == torch.uint8:
        shown = images.float() / 255
    else:
        shown = images.float()
        if mean is not None and std is not None:
            shown = shown * torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1) \
                + torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    shown = shown.clamp(0, 1).permute(0, 2, 3, 1).numpy()
    n = len(shown)
    ncols = max(1, min(ncols, n))
    nrows = max(1, -(-n // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.4), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(shown[i].squeeze(-1) if shown.shape[-1] == 1 else shown[i], cmap="gray" if shown.shape[-1] == 1 else None)
        if labels is None:
            continue
        true = class_names[int(labels[i])]
        if predictions is None:
            ax.set_title(true, fontsize=8)
        else:
            pred = class_names[int(predictions[i])]
            ax.set_title(f"{pred}\n({true})", fontsize=8, color="green" if pred == true else "red")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
