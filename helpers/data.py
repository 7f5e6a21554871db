"""CIFAR-10 for labs 08-09: find it, decode it once, hand it out as PyTorch Datasets.

Quick start::

    from helpers.data import CIFAR10_CLASSES, cifar10_available, load_cifar10

    train_set = load_cifar10(train=True, transform=train_transform)
    test_set = load_cifar10(train=False, transform=test_transform)
    small = load_cifar10(train=True, n_per_class=50, seed=0)           # 500 images, balanced
    pets = load_cifar10(train=False, classes=["cat", "dog"])           # labels 0 = cat, 1 = dog

Where the data comes from
-------------------------
One folder, the **course data directory**, holds the datasets of every lab:

- the environment variable ``COURSE_DATA_DIR`` names it when set (instructors point it at a
  shared, possibly read-only copy, e.g. ``export COURSE_DATA_DIR=/srv/course-data``);
- otherwise it is ``~/.local/share/pytorch-classification-course`` (``$XDG_DATA_HOME`` is
  honoured), one copy per user shared by all labs rather than one per lab folder.

Inside it, CIFAR-10 may be stored in either of two layouts:

- ``cifar-10-batches-py/`` — the official Python version (``data_batch_1`` … ``data_batch_5``,
  ``test_batch``), which is what ``torchvision.datasets.CIFAR10(download=True)`` writes;
- ``cifar10/train/<class>/*.png|jpg`` and ``cifar10/test/<class>/*.png|jpg`` — an image
  folder per class, as departments often stage it. Folder names are the class names below.

If neither is there, :func:`load_cifar10` downloads the official version (170 MB) into the
course data directory with torchvision, when a network is available. Offline, it raises one
:class:`CIFAR10NotFoundError` that lists every place it looked and how to fix it.

Decoding 60,000 image files takes a few seconds, so decoded images are cached as tensors in
the **cache directory**: ``COURSE_CACHE_DIR`` when set, else
``~/.cache/pytorch-classification-course`` (``$XDG_CACHE_HOME`` is honoured). The data
directory itself is never written to (it may be read-only). A cache file is keyed by the
source files' names, sizes and modification times, so changing the data invalidates it, and
it is written atomically, so an interrupted run or two kernels at once cannot leave a broken
file. Deleting the cache directory is always safe.

Images are ``uint8`` tensors of shape ``(3, 32, 32)`` (channels first, values 0-255). Use
``torchvision.transforms.v2`` on them: ``v2.ToDtype(torch.float32, scale=True)`` turns them
into floats in [0, 1] (the old ``transforms.ToTensor()`` expects PIL images instead).
"""
from __future__ import annotations

import hashlib
import os
import pickle
import socket
import tempfile
import warnings
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = [
    "CACHE_DIR_ENV",
    "CIFAR10_CLASSES",
    "CIFAR10NotFoundError",
    "DATA_DIR_ENV",
    "ImageTensorDataset",
    "cifar10_available",
    "course_cache_dir",
    "course_data_dir",
    "find_cifar10",
    "load_cifar10",
]

#: The official class order: label ``i`` is ``CIFAR10_CLASSES[i]``.
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
DATA_DIR_ENV = "COURSE_DATA_DIR"
CACHE_DIR_ENV = "COURSE_CACHE_DIR"
_APP = "pytorch-classification-course"
_PICKLE_DIR = "cifar-10-batches-py"
_FOLDER_DIR = "cifar10"
_PICKLE_FILES = {True: [f"data_batch_{i}" for i in range(1, 6)], False: ["test_batch"]}
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
_CACHE_VERSION = 1
_DOWNLOAD_TIMEOUT_S = 15


class CIFAR10NotFoundError(FileNotFoundError):
    """CIFAR-10 is in none of the places searched and could not be downloaded."""


# --------------------------------------------------------------------------- locations
def _user_dir(env: str, xdg_env: str, *default: str) -> Path:
    """``$env`` when set, else ``<$xdg_env or ~/<default>>/pytorch-classification-course``."""
    if os.environ.get(env):
        return Path(os.environ[env]).expanduser()
    base = os.environ.get(xdg_env) or Path.home().joinpath(*default)
    return Path(base).expanduser() / _APP


def course_data_dir() -> Path:
    """The course data directory: ``$COURSE_DATA_DIR``, else
    ``~/.local/share/pytorch-classification-course`` (under ``$XDG_DATA_HOME`` if set)."""
    return _user_dir(DATA_DIR_ENV, "XDG_DATA_HOME", ".local", "share")


def course_cache_dir() -> Path:
    """Where decoded tensors are cached: ``$COURSE_CACHE_DIR``, else
    ``~/.cache/pytorch-classification-course`` (under ``$XDG_CACHE_HOME`` if set)."""
    return _user_dir(CACHE_DIR_ENV, "XDG_CACHE_HOME", ".cache")


def _is_pickle_dir(path: Path) -> bool:
    return all((path / name).is_file() for names in _PICKLE_FILES.values() for name in names)


def _class_dirs(split_dir: Path) -> dict[str, Path] | None:
    """``{class name: folder}`` when ``split_dir`` holds one folder per CIFAR-10 class."""
    if not split_dir.is_dir():
        return None
    found = {p.name.lower(): p for p in split_dir.iterdir() if p.is_dir()}
    if not set(CIFAR10_CLASSES) <= set(found):
        return None
    return {name: found[name] for name in CIFAR10_CLASSES}


def _is_folder_dir(path: Path) -> bool:
    return all(_class_dirs(path / split) is not None for split in ("train", "test"))


def _candidates(root: Path) -> list[tuple[str, Path]]:
    """Where CIFAR-10 may sit under ``root``, in search order: (layout, folder)."""
    return [("pickle", root / _PICKLE_DIR), ("folder", root / _FOLDER_DIR),
            ("pickle", root), ("folder", root)]


def find_cifar10(data_dir: str | os.PathLike | None = None) -> tuple[str, Path] | None:
    """Locate CIFAR-10 without reading or downloading it.

    Returns ``("pickle", folder)`` or ``("folder", folder)`` for the first layout found
    under ``data_dir`` (default: :func:`course_data_dir`), or ``None``. ``data_dir`` may
    also be the dataset folder itself.
    """
    root = Path(data_dir).expanduser() if data_dir is not None else course_data_dir()
    for layout, path in _candidates(root):
        if (_is_pickle_dir(path) if layout == "pickle" else _is_folder_dir(path)):
            return layout, path
    return None


def cifar10_available(data_dir: str | os.PathLike | None = None) -> bool:
    """Is CIFAR-10 on disk (in either layout) under the course data directory? Never
    downloads; cheap enough for a test's skip condition."""
    try:
        return find_cifar10(data_dir) is not None
    except OSError:
        return False


# --------------------------------------------------------------------------- reading
def _read_pickles(folder: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The official Python layout: each batch file is a pickled dict whose ``data`` is an
    (N, 3072) uint8 array (1024 red, then green, then blue values, row by row) and whose
    ``labels`` is a list of N ints (documented at https://www.cs.toronto.edu/~kriz/cifar.html)."""
    images, labels = [], []
    for name in _PICKLE_FILES[train]:
        with open(folder / name, "rb") as f:
            # The files are Python 2 pickles of plain dicts, lists and NumPy arrays: only open
            # copies from a source you trust, as with any pickle.
            entry = pickle.load(f, encoding="latin1")
        entry = {k.decode() if isinstance(k, bytes) else k: v for k, v in entry.items()}
        data = np.asarray(entry["data"], dtype=np.uint8)
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise ValueError(f"{folder / name}: 'data' has shape {data.shape}; expected (N, 3072)")
        images.append(torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()))
        labels.append(torch.as_tensor(entry.get("labels", entry.get("fine_labels")), dtype=torch.int64))
    return torch.cat(images), torch.cat(labels)


def _list_images(split_dir: Path) -> list[tuple[int, Path, os.stat_result]]:
    """(label, file, stat) for every image of one split, class by class, files by name."""
    out = []
    for label, (name, folder) in enumerate(_class_dirs(split_dir).items()):
        entries = sorted((e for e in os.scandir(folder)
                          if e.is_file() and Path(e.name).suffix.lower() in _IMAGE_SUFFIXES),
                         key=lambda e: e.name)
        if not entries:
            raise ValueError(f"{folder}: no .png or .jpg images for class {name!r}")
        out += [(label, Path(e.path), e.stat()) for e in entries]
    return out


def _cache_key(split_dir: Path, files: list[tuple[int, Path, os.stat_result]]) -> str:
    digest = hashlib.sha256(f"v{_CACHE_VERSION}\n{split_dir.resolve()}\n".encode())
    for label, path, stat in files:
        digest.update(f"{label}\t{path.relative_to(split_dir)}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _decoder():
    """A function bytes-path -> (3, H, W) uint8 tensor: torchvision.io when it has one
    (fast), else Pillow."""
    try:
        from torchvision.io import ImageReadMode, decode_image, read_file

        def decode(path: Path) -> torch.Tensor:
            return decode_image(read_file(str(path)), mode=ImageReadMode.RGB)
    except ImportError:  # torchvision's image decoding is deprecated and may disappear
        from PIL import Image

        def decode(path: Path) -> torch.Tensor:
            with Image.open(path) as image:
                return torch.from_numpy(np.asarray(image.convert("RGB")).copy()).permute(2, 0, 1)
    return decode


def _decode_images(files: list[tuple[int, Path, os.stat_result]]) -> tuple[torch.Tensor, torch.Tensor]:
    decode = _decoder()
    images = torch.empty((len(files), 3, 32, 32), dtype=torch.uint8)
    with warnings.catch_warnings():
        # torchvision >= 0.29 warns on every decode that it prefers TorchCodec; the result is
        # the same, and a warning in a graded cell would cost the student the cell.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        for i, (_, path, _) in enumerate(files):
            try:
                image = decode(path)
            except (RuntimeError, OSError, ValueError) as exc:
                raise ValueError(f"{path}: not a readable PNG or JPEG image ({exc})") from exc
            if image.shape != (3, 32, 32):
                raise ValueError(f"{path}: image of size {tuple(image.shape[1:])}; CIFAR-10 images are 32x32")
            images[i] = image
    return images, torch.tensor([label for label, _, _ in files], dtype=torch.int64)


def _atomic_save(obj, path: Path) -> None:
    """Write to a temporary file in the same folder, then rename: readers see either the
    old file or the complete new one, never a partial write."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_folder(split_dir: Path, cache: bool) -> tuple[torch.Tensor, torch.Tensor]:
    files = _list_images(split_dir)
    key = _cache_key(split_dir, files)
    where = hashlib.sha256(str(split_dir.resolve()).encode()).hexdigest()[:12]
    cache_file = course_cache_dir() / "cifar10" / f"{split_dir.name}-{where}-{key[:24]}.pt"
    if cache and cache_file.is_file():
        try:
            saved = torch.load(cache_file, weights_only=True)
            if saved.get("key") == key and len(saved["labels"]) == len(files):
                return saved["images"], saved["labels"]
        except Exception:  # noqa: BLE001 - an unreadable cache is rebuilt, never trusted
            pass
    images, labels = _decode_images(files)
    if cache:
        try:
            _atomic_save({"key": key, "images": images, "labels": labels}, cache_file)
            for stale in cache_file.parent.glob(f"{split_dir.name}-{where}-*.pt"):
                if stale != cache_file:
                    stale.unlink(missing_ok=True)
        except OSError:
            pass  # a read-only or full cache directory only costs speed
    return images, labels


@contextmanager
def _socket_timeout(seconds: float):
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _download(root: Path) -> str | None:
    """Download the official version into ``root`` with torchvision; None on success, else
    why it failed."""
    try:
        from torchvision.datasets import CIFAR10

        root.mkdir(parents=True, exist_ok=True)
        with _socket_timeout(_DOWNLOAD_TIMEOUT_S):
            CIFAR10(root=str(root), train=True, download=True)
        return None
    except Exception as exc:  # noqa: BLE001 - reported in the not-found message
        return f"{type(exc).__name__}: {exc}"


def _not_found_message(root: Path, download_error: str | None) -> str:
    searched = "\n".join(f"  - {path}  ({'cifar-10-batches-py' if layout == 'pickle' else 'train/<class>/, test/<class>/'} layout)"
                         for layout, path in _candidates(root))
    source = (f"${DATA_DIR_ENV}={os.environ[DATA_DIR_ENV]}" if os.environ.get(DATA_DIR_ENV)
              else f"${DATA_DIR_ENV} is not set, so the default {root}")
    tried = (f"\nDownloading it into {root} failed: {download_error}" if download_error
             else "\nDownloading was not attempted (download=False).")
    return (
        f"CIFAR-10 was not found. The course data directory is {source}. Searched:\n{searched}"
        f"{tried}\n"
        "How to fix it, either:\n"
        f"  1. point {DATA_DIR_ENV} at a folder that holds CIFAR-10, e.g. in a terminal "
        f"`export {DATA_DIR_ENV}=/path/to/course-data` before starting Jupyter, or in the notebook "
        f"`import os; os.environ['{DATA_DIR_ENV}'] = '/path/to/course-data'` before loading;\n"
        "  2. on a machine with internet access, run "
        f"`python -c \"from helpers.data import load_cifar10; load_cifar10()\"` once (it downloads "
        f"170 MB into the course data directory), or put the official cifar-10-python.tar.gz "
        f"extracted (a cifar-10-batches-py/ folder) there;\n"
        "  3. or stage an image-folder copy as <course data dir>/cifar10/train/<class>/*.png and "
        "<course data dir>/cifar10/test/<class>/*.png with the class names "
        f"{', '.join(CIFAR10_CLASSES)}."
    )


def _load_arrays(train: bool, data_dir, download: bool, cache: bool) -> tuple[torch.Tensor, torch.Tensor]:
    root = Path(data_dir).expanduser() if data_dir is not None else course_data_dir()
    found = find_cifar10(root)
    download_error = None
    if found is None and download:
        download_error = _download(root)
        found = find_cifar10(root)
    if found is None:
        raise CIFAR10NotFoundError(_not_found_message(root, download_error))
    layout, path = found
    if layout == "pickle":
        return _read_pickles(path, train)
    return _read_folder(path / ("train" if train else "test"), cache)


# --------------------------------------------------------------------------- datasets
_KEEP = object()


class ImageTensorDataset(Dataset):
    """Images held in memory as one uint8 tensor, with integer labels.

    - ``images``: ``(N, 3, H, W)`` uint8 tensor; ``targets``: ``(N,)`` int64 tensor;
    - ``classes``: the class names, ``classes[label]``; ``class_to_idx``: the reverse;
    - ``transform``: applied to each image in ``__getitem__`` (``None`` returns the uint8
      image); ``target_transform`` likewise for the label.

    ``dataset[i]`` is ``(transform(images[i]), int(targets[i]))``, the same contract as
    torchvision's datasets, so it works with ``DataLoader``. ``images`` and ``targets`` give
    fast access to everything at once, e.g. for statistics or feature extraction.
    """

    def __init__(self, images: torch.Tensor, targets: torch.Tensor, classes: Sequence[str],
                 transform: Callable | None = None, target_transform: Callable | None = None):
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"images must be an (N, C, H, W) uint8 tensor, got {tuple(images.shape)} {images.dtype}")
        if targets.shape != (len(images),):
            raise ValueError(f"targets must have shape ({len(images)},), got {tuple(targets.shape)}")
        self.images = images
        self.targets = targets.to(torch.int64)
        self.classes = list(classes)
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}
        self.transform = transform
        self.target_transform = target_transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int):
        image, target = self.images[index], int(self.targets[index])
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({len(self)} images of shape {tuple(self.images.shape[1:])}, "
                f"{len(self.classes)} classes, transform={self.transform!r})")

    def class_counts(self) -> dict[str, int]:
        """How many images each class has, e.g. ``{'airplane': 5000, ...}``."""
        counts = torch.bincount(self.targets, minlength=len(self.classes)).tolist()
        return dict(zip(self.classes, counts))

    def subset(self, indices, transform=_KEEP) -> "ImageTensorDataset":
        """A new dataset holding ``images[indices]`` (same classes; the same transform unless
        another one is given, ``None`` included)."""
        indices = torch.as_tensor(indices, dtype=torch.int64)
        return ImageTensorDataset(self.images[indices], self.targets[indices], self.classes,
                                  self.transform if transform is _KEEP else transform,
                                  self.target_transform)

    def balanced_indices(self, n_per_class: int, seed: int = 0) -> torch.Tensor:
        """Sorted indices of ``n_per_class`` images of every class, drawn at random with
        ``seed`` (the same seed always gives the same images)."""
        if not isinstance(n_per_class, int) or isinstance(n_per_class, bool) or n_per_class < 1:
            raise ValueError(f"n_per_class must be a positive int, got {n_per_class!r}")
        generator = torch.Generator().manual_seed(seed)
        chosen = []
        for label, name in enumerate(self.classes):
            members = torch.nonzero(self.targets == label).flatten()
            if len(members) < n_per_class:
                raise ValueError(f"class {name!r} has {len(members)} images; n_per_class={n_per_class} is too many")
            chosen.append(members[torch.randperm(len(members), generator=generator)[:n_per_class]])
        return torch.cat(chosen).sort().values

    def split(self, n_per_class: int, seed: int = 0, transform=_KEEP,
              held_out_transform=_KEEP) -> tuple["ImageTensorDataset", "ImageTensorDataset"]:
        """Split off a balanced held-out part (e.g. a validation set): returns ``(rest,
        held_out)`` where ``held_out`` has ``n_per_class`` images of every class and ``rest``
        the others. Each part can get its own transform: augment the training part only."""
        held = self.balanced_indices(n_per_class, seed)
        keep = torch.ones(len(self), dtype=torch.bool)
        keep[held] = False
        return (self.subset(torch.nonzero(keep).flatten(), transform),
                self.subset(held, held_out_transform))


def load_cifar10(train: bool = True, transform: Callable | None = None, *,
                 target_transform: Callable | None = None,
                 classes: Sequence[str] | None = None, n_per_class: int | None = None,
                 seed: int = 0, data_dir: str | os.PathLike | None = None,
                 download: bool = True, cache: bool = True) -> ImageTensorDataset:
    """CIFAR-10's training (50,000 images) or test (10,000 images) set as a Dataset.

    - ``train``: ``True`` for the training set, ``False`` for the test set.
    - ``transform``: applied to each ``(3, 32, 32)`` uint8 image when it is read (e.g. a
      ``torchvision.transforms.v2.Compose``); ``target_transform`` to each label.
    - ``classes``: keep only these classes (names from :data:`CIFAR10_CLASSES`); labels are
      renumbered ``0 .. len(classes) - 1`` in the order given and ``dataset.classes`` lists them.
    - ``n_per_class``: keep a balanced random subset of that many images per class, drawn
      with ``seed`` (the same arguments always give the same images).
    - ``data_dir``: the course data directory (default: :func:`course_data_dir`).
    - ``download``: when CIFAR-10 is not found, download it with torchvision first.
    - ``cache``: reuse decoded images from :func:`course_cache_dir` (image-folder layout).

    Raises :class:`CIFAR10NotFoundError` (with the places searched and how to fix it) when the
    data is neither on disk nor downloadable.
    """
    images, targets = _load_arrays(bool(train), data_dir, download, cache)
    names = list(CIFAR10_CLASSES)
    if classes is not None:
        if isinstance(classes, str):
            raise TypeError("classes must be a list of class names, e.g. ['cat', 'dog']")
        unknown = [c for c in classes if c not in CIFAR10_CLASSES]
        if unknown or len(set(classes)) != len(classes) or not classes:
            raise ValueError(f"classes must be distinct names from {list(CIFAR10_CLASSES)}; got {list(classes)}")
        mapping = torch.full((len(CIFAR10_CLASSES),), -1, dtype=torch.int64)
        for new, name in enumerate(classes):
            mapping[CIFAR10_CLASSES.index(name)] = new
        keep = mapping[targets] >= 0
        images, targets, names = images[keep], mapping[targets[keep]], list(classes)
    dataset = ImageTensorDataset(images, targets, names, transform, target_transform)
    if n_per_class is not None:
        dataset = dataset.subset(dataset.balanced_indices(n_per_class, seed))
    return dataset
