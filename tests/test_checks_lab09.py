"""Unit tests for the checks lab 09 added to helpers.checks: check_feature_extractor and
check_partial_finetune_epoch, on tiny models of their own (no data, no pretrained weights)."""
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from helpers.checks import CheckFailed, check_feature_extractor, check_partial_finetune_epoch


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.block1 = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU())
        self.block2 = nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.ReLU())
        self.fc = nn.Linear(5, 3)

    def features(self, x):
        return self.block2(self.block1(x))

    def forward(self, x):
        return self.fc(self.features(x))


def loader():
    g = torch.Generator().manual_seed(0)
    X, y = torch.randn(12, 4, generator=g), torch.randint(0, 3, (12,), generator=g)
    return DataLoader(TensorDataset(X, y), batch_size=5)


def model():
    torch.manual_seed(0)
    m = Tiny()
    with torch.no_grad():  # running statistics that differ from batch statistics
        for bn in (m.block1[1], m.block2[1]):
            bn.running_mean.fill_(0.3)
            bn.running_var.fill_(2.0)
    return m


def extract_good(model, loader, device):
    model.eval()
    out, labels = [], []
    with torch.no_grad():
        for X, y in loader:
            out.append(model.features(X.to(device)).cpu())
            labels.append(y)
    return torch.cat(out), torch.cat(labels)


def test_feature_extractor_accepts_the_reference_and_a_detach_variant():
    features, labels = check_feature_extractor(extract_good, model(), loader(), "cpu")
    assert features.shape == (12, 5) and labels.shape == (12,)

    def detached(model, loader, device):
        model.eval()
        pairs = [(model.features(X).detach(), y) for X, y in loader]
        return torch.cat([f for f, _ in pairs]), torch.cat([y for _, y in pairs])

    check_feature_extractor(detached, model(), loader(), "cpu")


@pytest.mark.parametrize("body, message", [
    ("with torch.no_grad():\n        pairs = [(model.features(X), y) for X, y in loader]", "training mode"),
    ("model.eval()\n    pairs = [(model.features(X), y) for X, y in loader]", "computation graph"),
    ("model.eval()\n    with torch.no_grad():\n        pairs = [(model(X), y) for X, y in loader]", "shape"),
    ("model.eval()\n    with torch.no_grad():\n        pairs = [(model.features(X), y) for X, y in loader][::-1]",
     "loader's order"),
])
def test_feature_extractor_rejects(body, message):
    namespace = {"torch": torch}
    exec(f"def extract(model, loader, device):\n    {body}\n"
         "    return torch.cat([f for f, _ in pairs]), torch.cat([y for _, y in pairs])", namespace)
    with pytest.raises(CheckFailed, match=message):
        check_feature_extractor(namespace["extract"], model(), loader(), "cpu")


def test_feature_extractor_rejects_inference_tensors():
    def extract(model, loader, device):
        model.eval()
        with torch.inference_mode():
            pairs = [(model.features(X), y) for X, y in loader]
            return torch.cat([f for f, _ in pairs]), torch.cat([y for _, y in pairs])

    with pytest.raises(CheckFailed, match="inference_mode"):
        check_feature_extractor(extract, model(), loader(), "cpu")


def test_feature_extractor_rejects_the_notebooks_model():
    other = model()
    with pytest.raises(CheckFailed, match="never ran the model it was given"):
        check_feature_extractor(lambda m, l, d: extract_good(other, l, d), model(), loader(), "cpu")


def partly_frozen():
    m = model()
    m.requires_grad_(False)
    m.block2.requires_grad_(True)
    m.fc.requires_grad_(True)
    return m


def epoch_good(model, loader, loss_fn, optimizer, device):
    model.train()
    model.block1.eval()
    total, seen = 0.0, 0
    for X, y in loader:
        loss = loss_fn(model(X), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item() * len(y)
        seen += len(y)
    return total / seen


def test_partial_finetune_epoch_accepts_the_reference():
    loss = check_partial_finetune_epoch(epoch_good, partly_frozen(), loader(), nn.CrossEntropyLoss(), "cpu",
                                        frozen=["block1"])
    assert loss > 0


@pytest.mark.parametrize("old, new, message", [
    ("    model.block1.eval()\n", "", "frozen block1 in training mode"),
    ("    model.train()\n    model.block1.eval()\n", "    model.eval()\n", "evaluation mode"),
    ("        optimizer.zero_grad()\n", "", "zero_grad"),
    ("        total += loss.item() * len(y)\n", "        total = loss.item() * 12\n", "mean loss per example"),
    ("        total += loss.item() * len(y)\n", "        total += loss.item() * 12 / 3\n", "mean loss per example"),
])
def test_partial_finetune_epoch_rejects(old, new, message):
    import inspect
    source = inspect.getsource(epoch_good)
    assert old in source
    namespace = {}
    exec(source.replace(old, new), namespace)
    with pytest.raises(CheckFailed, match=message):
        check_partial_finetune_epoch(namespace["epoch_good"], partly_frozen(), loader(), nn.CrossEntropyLoss(), "cpu",
                                     frozen=["block1"])


def test_partial_finetune_epoch_rejects_the_notebooks_optimizer():
    other = partly_frozen()
    opt = torch.optim.SGD([p for p in other.parameters() if p.requires_grad], lr=0.1)
    with pytest.raises(CheckFailed, match="never (ran the model|called optimizer.step)"):
        check_partial_finetune_epoch(lambda m, l, f, o, d: epoch_good(m, l, f, opt, d), partly_frozen(), loader(),
                                     nn.CrossEntropyLoss(), "cpu", frozen=["block1"])


def test_partial_finetune_epoch_accepts_batch_norm_layers_switched_one_by_one():
    def epoch(model, loader, loss_fn, optimizer, device):
        model.train()
        for module in model.modules():
            if isinstance(module, nn.BatchNorm1d) and not module.weight.requires_grad:
                module.eval()
        total, seen = 0.0, 0
        for X, y in loader:
            optimizer.zero_grad()
            loss = loss_fn(model(X), y)
            loss.backward()
            optimizer.step()
            total, seen = total + loss.item() * len(y), seen + len(y)
        return total / seen

    check_partial_finetune_epoch(epoch, partly_frozen(), loader(), nn.CrossEntropyLoss(), "cpu", frozen=["block1"])
