import numpy as np
import pytest
import torch
from torchmetrics.classification import BinaryAccuracy, MulticlassAccuracy

from helpers import accuracy_fn


@pytest.mark.parametrize("seed", range(5))
def test_binary_matches_torchmetrics(seed):
    gen = torch.Generator().manual_seed(seed)
    y_true = torch.randint(0, 2, (257,), generator=gen).float()
    y_pred = torch.randint(0, 2, (257,), generator=gen).float()
    expected = BinaryAccuracy()(y_pred, y_true).item() * 100
    assert accuracy_fn(y_true, y_pred) == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("seed", range(5))
def test_multiclass_matches_torchmetrics(seed):
    gen = torch.Generator().manual_seed(seed)
    y_true = torch.randint(0, 4, (301,), generator=gen)
    y_pred = torch.randint(0, 4, (301,), generator=gen)
    expected = MulticlassAccuracy(num_classes=4, average="micro")(y_pred, y_true).item() * 100
    assert accuracy_fn(y_true, y_pred) == pytest.approx(expected, abs=1e-4)


def test_column_vectors_and_numpy_inputs():
    y = torch.tensor([[0.0], [1.0], [1.0], [1.0]])
    assert accuracy_fn(y, torch.tensor([[0.0], [1.0], [0.0], [1.0]])) == 75.0
    assert accuracy_fn(np.array([1, 2, 3]), [1, 2, 0]) == pytest.approx(200 / 3)


def test_broadcasting_trap_raises_with_explanation():
    y_true = torch.zeros(100)
    y_pred = torch.zeros(100, 1)
    with pytest.raises(ValueError) as info:
        accuracy_fn(y_true, y_pred)
    message = str(info.value)
    assert "(100,)" in message and "(100, 1)" in message
    assert "(100, 100)" in message and "squeeze" in message


def test_unrelated_shapes_raise():
    with pytest.raises(ValueError, match="must be equal"):
        accuracy_fn(torch.zeros(3), torch.zeros(4))


def test_probabilities_instead_of_labels_raise():
    with pytest.raises(ValueError, match="labels"):
        accuracy_fn(torch.tensor([0.0, 1.0]), torch.tensor([0.2, 0.9]))


def test_empty_and_wrong_types_raise():
    with pytest.raises(ValueError, match="empty"):
        accuracy_fn(torch.zeros(0), torch.zeros(0))
    with pytest.raises(TypeError, match="y_true"):
        accuracy_fn("abc", [1])


def test_does_not_track_or_move_tensors():
    y = torch.tensor([1.0, 0.0], requires_grad=True)
    assert accuracy_fn(y, torch.tensor([1.0, 1.0])) == 50.0
