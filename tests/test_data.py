"""helpers.data: CIFAR-10 found in either layout, cached safely, subsets and splits, one clear
error when absent. The tiny datasets are written by the tests themselves; the smoke test on
the real copy (labs 08-09) runs only when the course data directory holds it."""
import os
import pickle

import numpy as np
import pytest
import torch

from helpers import data
from helpers.data import (CIFAR10_CLASSES, CIFAR10NotFoundError, ImageTensorDataset, cifar10_available,
                          course_cache_dir, course_data_dir, find_cifar10, load_cifar10)

# The tests write their tiny images with torchvision.io, which warns that TorchCodec supersedes it.
pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding:DeprecationWarning")

N_TRAIN_PER_CLASS = 3  # per training batch file, so 15 per class over the five files
N_TEST_PER_CLASS = 2


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path, monkeypatch):
    """Every test gets its own data and cache directories; nothing touches ~/.cache."""
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))


def fake_images(n_per_class, offset):
    """Deterministic images whose first pixel encodes (label, index) so tests can check order."""
    rng = np.random.default_rng(offset)
    labels = np.repeat(np.arange(10), n_per_class)
    images = rng.integers(0, 256, size=(len(labels), 3, 32, 32), dtype=np.uint8)
    images[:, 0, 0, 0] = labels * 20 + np.tile(np.arange(n_per_class), 10)
    return images, labels


def write_pickle_layout(root, bytes_keys=True):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches = {f"data_batch_{i}": fake_images(N_TRAIN_PER_CLASS, i) for i in range(1, 6)}
    batches["test_batch"] = fake_images(N_TEST_PER_CLASS, 99)
    for name, (images, labels) in batches.items():
        entry = {"data": images.reshape(len(images), -1), "labels": labels.tolist(),
                 "batch_label": name, "filenames": [f"{i}.png" for i in range(len(labels))]}
        if bytes_keys:  # the official files are Python 2 pickles with byte-string keys
            entry = {k.encode(): v for k, v in entry.items()}
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f, protocol=2)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [c.encode() for c in CIFAR10_CLASSES]}, f, protocol=2)
    return batches


def write_folder_layout(root, name="cifar10", suffix=".png"):
    from torchvision.io import encode_jpeg, write_file, write_png

    written = {}
    for split, n, offset in (("train", 4, 1), ("test", N_TEST_PER_CLASS, 2)):
        images, labels = fake_images(n, offset)
        written[split] = (images, labels)
        counters = {}
        for image, label in zip(images, labels):
            class_dir = root / name / split / CIFAR10_CLASSES[label]
            class_dir.mkdir(parents=True, exist_ok=True)
            i = counters[label] = counters.get(label, -1) + 1
            path = class_dir / f"{i:04d}{suffix}"
            if suffix == ".png":
                write_png(torch.from_numpy(image), str(path))
            else:
                write_file(str(path), encode_jpeg(torch.from_numpy(image), quality=95))
    return written


# ----------------------------------------------------------------------------- locations
def test_course_data_dir_env_and_shared_default(monkeypatch, tmp_path):
    assert course_data_dir() == tmp_path / "data"
    monkeypatch.delenv("COURSE_DATA_DIR")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert course_data_dir() == tmp_path / "xdg" / "pytorch-classification-course"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert course_data_dir() == tmp_path / "home" / ".local" / "share" / "pytorch-classification-course"


def test_course_cache_dir_env_and_default(monkeypatch, tmp_path):
    assert course_cache_dir() == tmp_path / "cache"
    monkeypatch.delenv("COURSE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdgc"))
    assert course_cache_dir() == tmp_path / "xdgc" / "pytorch-classification-course"


# ----------------------------------------------------------------------------- pickle layout
@pytest.mark.parametrize("bytes_keys", [True, False])
def test_pickle_layout_reads_official_format(tmp_path, bytes_keys):
    batches = write_pickle_layout(tmp_path / "data", bytes_keys)
    assert cifar10_available()
    assert find_cifar10() == ("pickle", tmp_path / "data" / "cifar-10-batches-py")
    train = load_cifar10(train=True, download=False)
    test = load_cifar10(train=False, download=False)
    assert len(train) == 5 * 10 * N_TRAIN_PER_CLASS and len(test) == 10 * N_TEST_PER_CLASS
    assert train.images.dtype == torch.uint8 and train.images.shape[1:] == (3, 32, 32)
    assert train.classes == list(CIFAR10_CLASSES)
    # the rows are concatenated in file order and reshaped to channels-first images
    expected = np.concatenate([batches[f"data_batch_{i}"][0] for i in range(1, 6)])
    assert torch.equal(train.images, torch.from_numpy(expected))
    assert train.targets.tolist() == np.concatenate([batches[f"data_batch_{i}"][1] for i in range(1, 6)]).tolist()
    image, label = test[3]
    assert torch.equal(image, torch.from_numpy(batches["test_batch"][0][3])) and label == batches["test_batch"][1][3]
    assert isinstance(label, int)


# ----------------------------------------------------------------------------- folder layout
def test_folder_layout_png_exact_and_official_class_order(tmp_path):
    written = write_folder_layout(tmp_path / "data")
    assert find_cifar10() == ("folder", tmp_path / "data" / "cifar10")
    for split, train in (("train", True), ("test", False)):
        ds = load_cifar10(train=train, download=False)
        images, labels = written[split]
        assert ds.targets.tolist() == labels.tolist()  # class by class, official order
        assert torch.equal(ds.images, torch.from_numpy(images))
        assert ds.class_counts() == {c: len(images) // 10 for c in CIFAR10_CLASSES}


def test_folder_layout_jpeg_and_case_insensitive_class_folders(tmp_path):
    write_folder_layout(tmp_path / "data", suffix=".jpg")
    (tmp_path / "data" / "cifar10" / "test" / "airplane").rename(tmp_path / "data" / "cifar10" / "test" / "Airplane")
    ds = load_cifar10(train=False, download=False)
    assert len(ds) == 10 * N_TEST_PER_CLASS and ds.images.shape[1:] == (3, 32, 32)
    assert ds.targets[:N_TEST_PER_CLASS].tolist() == [0] * N_TEST_PER_CLASS


def test_data_dir_may_be_the_dataset_folder_itself(tmp_path):
    write_folder_layout(tmp_path / "elsewhere")
    assert find_cifar10(tmp_path / "elsewhere" / "cifar10") == ("folder", tmp_path / "elsewhere" / "cifar10")
    assert len(load_cifar10(train=False, data_dir=tmp_path / "elsewhere" / "cifar10", download=False)) == 20
    assert len(load_cifar10(train=False, data_dir=tmp_path / "elsewhere", download=False)) == 20


def test_wrong_image_size_is_named(tmp_path):
    from torchvision.io import write_png

    write_folder_layout(tmp_path / "data")
    bad = tmp_path / "data" / "cifar10" / "test" / "cat" / "big.png"
    write_png(torch.zeros(3, 64, 64, dtype=torch.uint8), str(bad))
    with pytest.raises(ValueError, match="big.png"):
        load_cifar10(train=False, download=False)


# ----------------------------------------------------------------------------- cache
def cache_files():
    return sorted((course_cache_dir() / "cifar10").glob("*"))


def test_cache_is_written_reused_and_invalidated(tmp_path, monkeypatch):
    from torchvision.io import write_png

    write_folder_layout(tmp_path / "data")
    first = load_cifar10(train=False, download=False)
    files = cache_files()
    assert len(files) == 1 and files[0].name.startswith("test-") and files[0].suffix == ".pt"

    def no_decoding(*args):
        raise AssertionError("decoded again although the cache is valid")

    monkeypatch.setattr(data, "_decode_images", no_decoding)
    assert torch.equal(load_cifar10(train=False, download=False).images, first.images)
    monkeypatch.undo()
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))

    # changing a source file changes the key: decoded again, the stale file is replaced
    changed = tmp_path / "data" / "cifar10" / "test" / "dog" / "0000.png"
    write_png(torch.full((3, 32, 32), 7, dtype=torch.uint8), str(changed))
    os.utime(changed, ns=(1, 1))
    again = load_cifar10(train=False, download=False)
    dog = CIFAR10_CLASSES.index("dog")
    assert torch.equal(again.images[dog * N_TEST_PER_CLASS], torch.full((3, 32, 32), 7, dtype=torch.uint8))
    assert len(cache_files()) == 1 and cache_files() != files
    assert not list((course_cache_dir() / "cifar10").glob("*.tmp"))


def test_corrupt_cache_is_rebuilt(tmp_path):
    write_folder_layout(tmp_path / "data")
    good = load_cifar10(train=False, download=False).images
    cache_files()[0].write_bytes(b"not a torch file")
    assert torch.equal(load_cifar10(train=False, download=False).images, good)
    assert torch.load(cache_files()[0], weights_only=True)["images"].shape == good.shape


def test_unwritable_cache_only_costs_speed(tmp_path, monkeypatch):
    write_folder_layout(tmp_path / "data")
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the cache directory should be")
    monkeypatch.setenv("COURSE_CACHE_DIR", str(blocker / "cache"))
    assert len(load_cifar10(train=False, download=False)) == 20
    assert len(load_cifar10(train=False, download=False, cache=False)) == 20


# ----------------------------------------------------------------------------- not found
def test_not_found_lists_places_and_fixes(tmp_path):
    assert not cifar10_available() and find_cifar10() is None
    with pytest.raises(CIFAR10NotFoundError) as info:
        load_cifar10(download=False)
    message = str(info.value)
    root = tmp_path / "data"
    for place in (root / "cifar-10-batches-py", root / "cifar10", root):
        assert str(place) in message
    assert "COURSE_DATA_DIR" in message and "export" in message and "not attempted" in message
    assert isinstance(info.value, FileNotFoundError)


def test_offline_download_fails_with_the_same_clear_error(tmp_path, monkeypatch):
    """download=True goes through torchvision's CIFAR10(download=True); offline it fails fast
    and the error says why, where it looked and what to do (no real network access here)."""
    import urllib.error

    import torchvision.datasets

    calls = []

    class OfflineCIFAR10:
        def __init__(self, root, train=True, download=False, **kwargs):
            calls.append((root, train, download))
            raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", OfflineCIFAR10)
    with pytest.raises(CIFAR10NotFoundError, match="Name or service not known") as info:
        load_cifar10(train=False)
    assert calls == [(str(tmp_path / "data"), True, True)]
    assert "cifar-10-batches-py" in str(info.value) and "COURSE_DATA_DIR" in str(info.value)


def test_successful_download_is_then_read(tmp_path, monkeypatch):
    import torchvision.datasets

    class FakeDownload:
        def __init__(self, root, train=True, download=False, **kwargs):
            write_pickle_layout(tmp_path / "data")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeDownload)
    assert len(load_cifar10(train=False)) == 10 * N_TEST_PER_CLASS


def test_incomplete_folder_is_not_accepted(tmp_path):
    write_folder_layout(tmp_path / "data")
    for path in sorted((tmp_path / "data" / "cifar10" / "test" / "truck").iterdir()):
        path.unlink()
    (tmp_path / "data" / "cifar10" / "test" / "truck").rmdir()
    assert not cifar10_available()


# ----------------------------------------------------------------------------- subsets and transforms
def test_classes_subset_relabels_in_given_order(tmp_path):
    write_pickle_layout(tmp_path / "data")
    full = load_cifar10(train=False, download=False)
    pets = load_cifar10(train=False, classes=["dog", "cat"], download=False)
    assert pets.classes == ["dog", "cat"] and pets.class_to_idx == {"dog": 0, "cat": 1}
    assert len(pets) == 2 * N_TEST_PER_CLASS
    is_dog = full.targets == CIFAR10_CLASSES.index("dog")
    dogs = pets.images[pets.targets == 0]
    assert torch.equal(dogs, full.images[is_dog])
    with pytest.raises(ValueError, match="distinct names"):
        load_cifar10(train=False, classes=["dog", "wolf"], download=False)
    with pytest.raises(TypeError):
        load_cifar10(train=False, classes="dog", download=False)


def test_balanced_subset_is_seeded_and_balanced(tmp_path):
    write_pickle_layout(tmp_path / "data")
    a = load_cifar10(train=True, n_per_class=4, seed=1, download=False)
    b = load_cifar10(train=True, n_per_class=4, seed=1, download=False)
    c = load_cifar10(train=True, n_per_class=4, seed=2, download=False)
    assert len(a) == 40 and set(a.class_counts().values()) == {4}
    assert torch.equal(a.images, b.images)
    assert not torch.equal(a.images, c.images)
    with pytest.raises(ValueError, match="too many"):
        load_cifar10(train=True, n_per_class=16, download=False)
    with pytest.raises(ValueError, match="positive int"):
        load_cifar10(train=True, n_per_class=0, download=False)


def test_split_is_disjoint_balanced_and_transforms_are_separate(tmp_path):
    write_pickle_layout(tmp_path / "data")
    full = load_cifar10(train=True, download=False)
    rest, held = full.split(5, seed=0, transform=lambda x: "augmented", held_out_transform=None)
    assert len(rest) + len(held) == len(full) and set(held.class_counts().values()) == {5}
    firsts = set(rest.images[:, 0, 0, 0].tolist()) | set(held.images[:, 0, 0, 0].tolist())
    assert len(firsts) == len(set(full.images[:, 0, 0, 0].tolist()))
    assert rest[0][0] == "augmented" and held[0][0].dtype == torch.uint8


def test_transform_and_dataloader(tmp_path):
    from torch.utils.data import DataLoader
    from torchvision.transforms import v2

    write_folder_layout(tmp_path / "data")
    transform = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize([0.5] * 3, [0.5] * 3)])
    ds = load_cifar10(train=False, transform=transform, target_transform=lambda y: y + 100, download=False)
    x, y = next(iter(DataLoader(ds, batch_size=8)))
    assert x.shape == (8, 3, 32, 32) and x.dtype == torch.float32 and x.min() >= -1 and x.max() <= 1
    assert y.tolist() == [100 + i // N_TEST_PER_CLASS for i in range(8)]
    assert "20 images" in repr(ds)


def test_image_tensor_dataset_validates_inputs():
    with pytest.raises(ValueError, match="uint8"):
        ImageTensorDataset(torch.zeros(2, 3, 32, 32), torch.zeros(2, dtype=torch.int64), ["a"])
    with pytest.raises(ValueError, match="targets"):
        ImageTensorDataset(torch.zeros(2, 3, 32, 32, dtype=torch.uint8), torch.zeros(3, dtype=torch.int64), ["a"])


# ----------------------------------------------------------------------------- the real copy
REAL = cifar10_available(os.environ.get("COURSE_DATA_DIR") or course_data_dir())


@pytest.mark.skipif(not REAL, reason="CIFAR-10 is not in the course data directory (set COURSE_DATA_DIR)")
def test_real_cifar10_smoke(monkeypatch):
    """The shared copy (labs 08-09): sizes, balance, dtype and the well-known channel means.
    Uses the real cache directory so later runs (and the labs) reuse the decoded tensors."""
    monkeypatch.undo()
    train = load_cifar10(train=True, download=False)
    test = load_cifar10(train=False, download=False)
    assert len(train) == 50_000 and len(test) == 10_000
    assert set(train.class_counts().values()) == {5000} and set(test.class_counts().values()) == {1000}
    assert train.images.dtype == torch.uint8 and train.images.shape[1:] == (3, 32, 32)
    mean = train.images[::10].float().mean(dim=(0, 2, 3)) / 255
    assert torch.allclose(mean, torch.tensor([0.491, 0.482, 0.447]), atol=0.01), mean


def test_decoding_is_silent(tmp_path):
    """Labs load data inside graded cells, where any warning costs the cell."""
    import warnings

    write_folder_layout(tmp_path / "data", suffix=".jpg")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(load_cifar10(train=True, download=False)) == 40


# ----------------------------------------------------------------------------- the shipped backbone
def test_shipped_backbone_loads_offline_and_is_small():
    from helpers.models import (PRETRAINED_FILE, SOURCE_CLASSES, CifarCNN, load_pretrained_backbone,
                                pretrained_info, pretrained_transform)

    assert PRETRAINED_FILE.is_file() and PRETRAINED_FILE.stat().st_size < 4e6
    info = pretrained_info()
    assert info["classes"] == list(SOURCE_CLASSES) and len(info["mean"]) == len(info["std"]) == 3
    model = load_pretrained_backbone()
    assert isinstance(model, CifarCNN) and not model.training
    assert model.fc.out_features == 5 and model.fc.in_features == info["widths"][-1]
    x = pretrained_transform()(torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8))
    with torch.no_grad():
        assert model(x).shape == (2, 5) and model.features(x).shape == (2, model.fc.in_features)
    # the same architecture from scratch is what lab 09 compares against
    fresh = CifarCNN(num_classes=5)
    assert [tuple(p.shape) for p in fresh.parameters()] == [tuple(p.shape) for p in model.parameters()]
    card = (PRETRAINED_FILE.parent / "MODEL_CARD.md").read_text()
    assert f"{info['source_test_accuracy']:.1f} %" in card


@pytest.mark.skipif(not REAL, reason="CIFAR-10 is not in the course data directory (set COURSE_DATA_DIR)")
def test_shipped_backbone_reaches_documented_accuracy(monkeypatch):
    """On the source classes' 5,000 test images the shipped weights score what the model card
    says (measured on the course's JPEG copy; the official PNG/pickle version may differ by a
    fraction of a point, hence the tolerance)."""
    from helpers.checks import recompute_accuracy
    from helpers.models import SOURCE_CLASSES, load_pretrained_backbone, pretrained_info, pretrained_transform

    monkeypatch.undo()
    test = load_cifar10(train=False, classes=list(SOURCE_CLASSES), transform=pretrained_transform(), download=False)
    accuracy = recompute_accuracy(load_pretrained_backbone(), test, batch_size=1000)
    assert len(test) == 5000
    assert abs(accuracy - pretrained_info()["source_test_accuracy"]) <= 1.0, accuracy


def test_pretrain_script_is_seeded_and_writes_a_loadable_backbone(tmp_path):
    """`python -m coursetools.pretrain_backbone` on a tiny data set: it trains on the source
    classes only, writes weights plus metadata that `load_pretrained_backbone` reads, and the
    same seed gives the same weights."""
    from coursetools import pretrain_backbone
    from helpers.models import SOURCE_CLASSES, load_pretrained_backbone, pretrained_info

    write_folder_layout(tmp_path / "data")
    first, second = tmp_path / "first.pt", tmp_path / "second.pt"
    for out in (first, second):
        assert pretrain_backbone.main(["--epochs", "1", "--out", str(out)]) == 0
    info = pretrained_info(first)
    assert info["classes"] == list(SOURCE_CLASSES) and info["epochs"] == 1 and info["seed"] == 0
    assert info["train_images"] == 4 * len(SOURCE_CLASSES)  # the five target classes are never read
    a, b = load_pretrained_backbone(first).state_dict(), load_pretrained_backbone(second).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_pretrain_experiment_options_leave_the_shipped_recipe_alone(tmp_path):
    """`--convs-per-block` is for experiments: the backbone it writes records the value, and the
    module's RECIPE (what the next run, or the model card, calls "the recipe") is unchanged."""
    from coursetools import pretrain_backbone
    from helpers.models import load_pretrained_backbone, pretrained_info

    write_folder_layout(tmp_path / "data")
    before = dict(pretrain_backbone.RECIPE)
    out = tmp_path / "deeper.pt"
    assert pretrain_backbone.main(["--epochs", "1", "--convs-per-block", "2", "--out", str(out)]) == 0
    assert pretrain_backbone.RECIPE == before
    assert pretrained_info(out)["convs_per_block"] == 2
    assert sum(isinstance(m, torch.nn.Conv2d) for m in load_pretrained_backbone(out).modules()) == 6
