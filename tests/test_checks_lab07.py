"""Unit tests for the check added for lab 07: check_train_epoch_loader."""
import pytest
import torch
from torch import nn

from helpers import checks


def _epoch(zero_grad=True, weighted=True, last_only=False, train=True, global_loader=None):
    def train_epoch(model, loader, loss_fn, optimizer):
        if train:
            model.train()
        total, seen, losses = 0.0, 0, []
        for X_batch, y_batch in (global_loader or loader):
            loss = loss_fn(model(X_batch), y_batch)
            if zero_grad:
                optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(y_batch)
            seen += len(y_batch)
            losses.append(loss.item())
        if last_only:
            return losses[-1]
        return total / seen if weighted else sum(losses) / len(losses)
    return train_epoch


def _data():
    torch.manual_seed(0)
    X = torch.randn(10, 3)
    y = (X[:, :1] > 0).float()
    model = nn.Linear(3, 1)
    with torch.no_grad():
        model.weight.mul_(8)  # batch losses far apart, so the ways of averaging them differ
    return model, X, y


def test_loader_epoch_accepts_the_written_one():
    model, X, y = _data()
    loss = checks.check_train_epoch_loader(_epoch(), model, X, y, nn.BCEWithLogitsLoss(), batch_size=4)
    assert isinstance(loss, float)


@pytest.mark.parametrize("kwargs, match", [
    (dict(zero_grad=False), r"train_epoch\(model, loader, loss_fn, optimizer\) never calls optimizer.zero_grad"),
    (dict(weighted=False), "without weights.*len\\(loader.dataset\\)"),
    (dict(last_only=True), "last batch's loss"),
    (dict(train=False), "evaluation mode"),
])
def test_loader_epoch_mutants_fail_with_the_loader_signature(kwargs, match):
    model, X, y = _data()
    with pytest.raises(checks.CheckFailed, match=match) as info:
        checks.check_train_epoch_loader(_epoch(**kwargs), model, X, y, nn.BCEWithLogitsLoss(), batch_size=4)
    assert "batch_size=4)" not in str(info.value) and "torch.randperm" not in str(info.value)


def test_loader_epoch_names_a_loader_that_is_not_the_argument():
    model, X, y = _data()
    other = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X + 100, y), batch_size=4, shuffle=True)
    with pytest.raises(checks.CheckFailed, match="loop over the loader it is given"):
        checks.check_train_epoch_loader(_epoch(global_loader=other), model, X, y, nn.BCEWithLogitsLoss(),
                                        batch_size=4)
