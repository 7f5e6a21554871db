"""Reproduce the pretrained backbone shipped in ``helpers/pretrained/cifar5_backbone.pt``.

    python -m coursetools.pretrain_backbone                  # the shipped recipe (seed 0)
    python -m coursetools.pretrain_backbone --out /tmp/b.pt  # elsewhere, e.g. to compare

Trains ``helpers.models.CifarCNN`` on the training images of the five source classes
(airplane, automobile, bird, cat, deer; 25,000 images) with random-crop and flip
augmentation, SGD with Nesterov momentum, weight decay, label smoothing and a one-cycle
learning-rate schedule, then reports the accuracy on the source classes' 5,000 test images
and saves ``{"state_dict": ..., "meta": {...}}`` (loads with ``weights_only=True``). Needs
CIFAR-10 in the course data directory (see ``helpers.data``). Seeded: on the same machine
and library versions a rerun gives the same weights; elsewhere expect the accuracy to agree
within about half a point. Lab 09's transfer experiment must never see the five target
classes here, and it does not: only the source classes are loaded.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from helpers.checks import recompute_accuracy
from helpers.data import load_cifar10
from helpers.models import PRETRAINED_FILE, SOURCE_CLASSES, CifarCNN
from helpers.reproducibility import set_seed

RECIPE = {
    "widths": (32, 64, 128),
    "convs_per_block": 1,
    "dropout": 0.2,
    "epochs": 15,
    "batch_size": 128,
    "max_lr": 0.1,
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "label_smoothing": 0.1,
    "augmentation": "RandomCrop(32, padding=4, padding_mode='reflect'), RandomHorizontalFlip()",
}


def channel_stats(images: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 images, on the [0, 1] scale."""
    x = images.float().div_(255)
    return x.mean(dim=(0, 2, 3)).tolist(), x.std(dim=(0, 2, 3)).tolist()


def pretrain(seed: int = 0, epochs: int = RECIPE["epochs"], log=print,
             recipe: dict | None = None) -> tuple[CifarCNN, dict]:
    """Train the backbone with ``recipe`` (default: the shipped ``RECIPE``; pass a modified copy
    for experiments) and return it with the metadata saved beside its weights."""
    from torchvision.transforms import v2

    recipe = RECIPE if recipe is None else recipe
    set_seed(seed)
    train_raw = load_cifar10(train=True, classes=list(SOURCE_CLASSES))
    mean, std = channel_stats(train_raw.images)
    normalize = [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]
    train_raw.transform = v2.Compose([v2.RandomCrop(32, padding=4, padding_mode="reflect"),
                                      v2.RandomHorizontalFlip(), *normalize])
    test_set = load_cifar10(train=False, classes=list(SOURCE_CLASSES), transform=v2.Compose(normalize))

    model = CifarCNN(num_classes=len(SOURCE_CLASSES), widths=recipe["widths"], dropout=recipe["dropout"],
                     convs_per_block=recipe["convs_per_block"])
    loader = DataLoader(train_raw, batch_size=recipe["batch_size"], shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    optimizer = torch.optim.SGD(model.parameters(), lr=recipe["max_lr"], momentum=recipe["momentum"],
                                nesterov=True, weight_decay=recipe["weight_decay"])
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=recipe["max_lr"],
                                                    total_steps=epochs * len(loader))
    loss_fn = nn.CrossEntropyLoss(label_smoothing=recipe["label_smoothing"])
    start = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        total, n = 0.0, 0
        for x, y in loader:
            loss = loss_fn(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += loss.item() * len(y)
            n += len(y)
        log(f"epoch {epoch + 1}/{epochs}: train loss {total / n:.4f}  ({time.perf_counter() - start:.0f} s)")
    accuracy = recompute_accuracy(model, test_set)
    meta = {
        "classes": list(SOURCE_CLASSES),
        "widths": list(recipe["widths"]),
        "convs_per_block": recipe["convs_per_block"],
        "dropout": recipe["dropout"],
        "mean": [round(m, 4) for m in mean],
        "std": [round(s, 4) for s in std],
        "source_test_accuracy": round(accuracy, 2),
        "seed": seed,
        "epochs": epochs,
        "recipe": json.dumps({k: v for k, v in recipe.items() if k != "epochs"}),
        "train_images": len(train_raw),
        "torch": str(torch.__version__),
    }
    return model, meta


def save(model: nn.Module, meta: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": model.state_dict(), "meta": meta}, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m coursetools.pretrain_backbone", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=RECIPE["epochs"])
    parser.add_argument("--convs-per-block", type=int, default=RECIPE["convs_per_block"],
                        help="for experiments; the shipped backbone uses the default")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads (default 1: the shipped file was made single-threaded, and "
                             "results are bit-for-bit repeatable only with the same thread count)")
    parser.add_argument("--out", type=Path, default=PRETRAINED_FILE, help=f"default: {PRETRAINED_FILE}")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, meta = pretrain(args.seed, args.epochs, recipe={**RECIPE, "convs_per_block": args.convs_per_block})
    save(model, meta, args.out)
    print(f"source-class test accuracy {meta['source_test_accuracy']:.2f} %; saved {args.out} "
          f"({args.out.stat().st_size / 1e6:.2f} MB)")
    print(json.dumps(meta, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
