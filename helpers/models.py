"""The course's small CIFAR CNN and its pretrained backbone (lab 09).

``CifarCNN`` is a three-block convolutional network for 32x32 colour images, the blocks of lab
08's ``CifarNet``: each block is a 3x3 convolution with batch norm and ReLU followed by 2x2 max
pooling (32 -> 16 -> 8 -> 4 pixels), with 32, 64 and 128 channels. Global average pooling then
gives one 128-number feature vector per image and a linear layer ``fc`` turns it into class
scores. ``load_pretrained_backbone()`` returns one pretrained by
the course on five CIFAR-10 classes (see ``helpers/pretrained/MODEL_CARD.md``), which works
offline because the weights ship with this package::

    from helpers.models import load_pretrained_backbone, pretrained_transform

    model = load_pretrained_backbone()          # CifarCNN with a 5-class head for SOURCE_CLASSES
    transform = pretrained_transform()          # the normalization it was trained with
    model.fc = nn.Linear(model.fc.in_features, 5)   # a new head for a new task

It mirrors torchvision's ``resnet18(weights=...)``: the classifier is the attribute ``fc``.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

__all__ = [
    "CifarCNN",
    "PRETRAINED_FILE",
    "SOURCE_CLASSES",
    "TARGET_CLASSES",
    "load_pretrained_backbone",
    "pretrained_info",
    "pretrained_transform",
]

#: The classes the shipped backbone was pretrained on, in its label order.
SOURCE_CLASSES = ("airplane", "automobile", "bird", "cat", "deer")
#: The other five classes: the new task of lab 09.
TARGET_CLASSES = ("dog", "frog", "horse", "ship", "truck")
PRETRAINED_FILE = Path(__file__).with_name("pretrained") / "cifar5_backbone.pt"


def _conv_bn_relu(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]


class CifarCNN(nn.Module):
    """Three conv blocks, global average pooling and a linear classifier ``fc``.

    - ``widths``: output channels of the three blocks (the last one is the feature size);
    - ``convs_per_block``: 3x3 conv-BN-ReLU layers per block before its max pooling;
    - ``features(x)``: the ``(N, widths[-1])`` feature vectors (everything but ``fc``);
    - ``forward(x)``: ``(N, num_classes)`` logits.
    """

    def __init__(self, num_classes: int = 10, widths: tuple[int, int, int] = (32, 64, 128),
                 dropout: float = 0.2, convs_per_block: int = 1):
        super().__init__()
        self.widths, self.convs_per_block = tuple(widths), convs_per_block

        def block(in_channels, out_channels):
            layers = _conv_bn_relu(in_channels, out_channels)
            for _ in range(convs_per_block - 1):
                layers += _conv_bn_relu(out_channels, out_channels)
            return nn.Sequential(*layers, nn.MaxPool2d(2))

        c1, c2, c3 = widths
        self.block1, self.block2, self.block3 = block(3, c1), block(c1, c2), block(c2, c3)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(c3, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.flatten(self.pool(self.block3(self.block2(self.block1(x)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.features(x)))


def _load_checkpoint(path: Path = PRETRAINED_FILE) -> dict:
    if not path.is_file():
        raise FileNotFoundError(
            f"the pretrained backbone {path} is missing from the helpers package; reinstall the "
            "course (pip install -e .) or recreate it with `python -m coursetools.pretrain_backbone`.")
    return torch.load(path, map_location="cpu", weights_only=True)


def pretrained_info(path: Path = PRETRAINED_FILE) -> dict:
    """What the shipped checkpoint records about itself: classes, widths, the normalization
    ``mean``/``std`` it was trained with, its source test accuracy and training recipe."""
    return dict(_load_checkpoint(path)["meta"])


def load_pretrained_backbone(path: Path = PRETRAINED_FILE) -> CifarCNN:
    """The course's ``CifarCNN`` pretrained on the five ``SOURCE_CLASSES`` (its ``fc`` still
    predicts those five), in eval mode on the CPU. Needs no network: the weights ship with
    the helpers package."""
    checkpoint = _load_checkpoint(path)
    meta = checkpoint["meta"]
    model = CifarCNN(num_classes=len(meta["classes"]), widths=tuple(meta["widths"]),
                     dropout=meta.get("dropout", 0.2), convs_per_block=meta.get("convs_per_block", 1))
    state = {k: v.float() if v.is_floating_point() else v for k, v in checkpoint["state_dict"].items()}
    model.load_state_dict(state)
    return model.eval()


def pretrained_transform(path: Path = PRETRAINED_FILE):
    """The test-time transform the backbone expects: uint8 image -> float in [0, 1] ->
    normalized with the mean and std of its pretraining images."""
    from torchvision.transforms import v2

    meta = pretrained_info(path)
    return v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(meta["mean"], meta["std"])])
