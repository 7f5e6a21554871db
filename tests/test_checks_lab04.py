"""Unit tests for helpers.checks.check_logits_model (lab 04: wrong output layers of a logits model)."""
import pytest
import torch
from torch import nn

from helpers.checks import CheckFailed, check_logits_model


class Wrapped(nn.Module):
    def __init__(self, tail):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 4))
        self.tail = tail

    def forward(self, x):
        return self.tail(self.body(x))


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 4))


@pytest.mark.parametrize("model", [
    mlp(),
    nn.Linear(2, 4),
    nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 4)),
    Wrapped(lambda z: torch.log_softmax(z, dim=1)),
    Wrapped(nn.Identity()),
])
def test_accepts_logits_models(model):
    model.train()
    out = check_logits_model(model, 2, 4, "model_blob")
    assert out.shape == (96, 4)
    assert model.training   # the mode is restored


@pytest.mark.parametrize("tail, words", [
    (nn.Softmax(dim=1), "applies softmax to the output"),
    (nn.Softmax(dim=0), "over dim=0"),
    (nn.ReLU(), "applies a ReLU"),
    (nn.Sigmoid(), "applies a sigmoid"),
    (nn.Dropout(0.5), "applies dropout to its logits"),
    (lambda z: 2 * z + 1, "changes the output of its last Linear layer"),
])
def test_names_the_wrong_output_layer(tail, words):
    with pytest.raises(CheckFailed, match=words):
        check_logits_model(Wrapped(tail), 2, 4, "model_blob")


def test_wrong_width_and_errors():
    with pytest.raises(CheckFailed, match=r"expected \(96, 4\)"):
        check_logits_model(nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1)), 2, 4)
    with pytest.raises(CheckFailed, match="raised RuntimeError"):
        check_logits_model(nn.Linear(3, 4), 2, 4)


def test_model_without_linear_layers_judged_on_outputs():
    class Softmaxed(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(2, 4))

        def forward(self, x):
            return torch.softmax(x @ self.w, dim=1)

    with pytest.raises(CheckFailed, match="sums to 1"):
        check_logits_model(Softmaxed(), 2, 4)


def test_leaves_random_stream_alone():
    model = mlp()
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    check_logits_model(model, 2, 4)
    assert torch.equal(torch.rand(3), expected)
