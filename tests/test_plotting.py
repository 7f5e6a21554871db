import matplotlib.pyplot as plt
import pytest
import torch
from torch import nn

from helpers import plot_decision_boundary, plot_image_grid, plot_loss_curves, plot_predictions
from helpers.data import CIFAR10_CLASSES


class Recorder(nn.Module):
    """Wraps a model and records how plot_decision_boundary calls it."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.grad_enabled = []
        self.moved = 0

    def forward(self, x):
        self.grad_enabled.append(torch.is_grad_enabled())
        return self.inner(x)

    def to(self, *args, **kwargs):  # noqa: D401 - spy
        self.moved += 1
        return super().to(*args, **kwargs)

    def cpu(self):
        self.moved += 1
        return super().cpu()


def _points(n=60, seed=0):
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 2, generator=gen)
    return X, (X[:, 0] > 0).long()


def test_binary_logits_boundary_follows_the_sign():
    X, y = _points()
    model = nn.Linear(2, 1)
    with torch.no_grad():
        model.weight[:] = torch.tensor([[1.0, 0.0]])
        model.bias.zero_()
    ax = plot_decision_boundary(model, X, y)
    assert ax.get_legend() is not None
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["class 0", "class 1"]


def test_probability_outputs_and_numpy_inputs():
    X, y = _points()
    model = nn.Sequential(nn.Linear(2, 1), nn.Sigmoid())
    ax = plot_decision_boundary(model, X.numpy(), y.numpy().reshape(-1, 1), outputs="probabilities",
                                class_names=["no", "yes"], title="t")
    assert ax.get_title() == "t"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["no", "yes"]


def test_multiclass_argmax_with_four_classes():
    gen = torch.Generator().manual_seed(1)
    X = torch.randn(80, 2, generator=gen)
    y = torch.randint(0, 4, (80,), generator=gen)
    model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 4))
    ax = plot_decision_boundary(model, X, y)
    assert len(ax.get_legend().get_texts()) == 4


@pytest.mark.parametrize("start_in_train_mode", [True, False])
def test_restores_mode_never_moves_model_and_tracks_no_gradients(start_in_train_mode):
    X, y = _points()
    model = Recorder(nn.Sequential(nn.Linear(2, 4), nn.Dropout(0.5), nn.Linear(4, 1)))
    model.train(start_in_train_mode)
    before = {name: p.clone() for name, p in model.named_parameters()}
    plot_decision_boundary(model, X, y)
    assert model.training is start_in_train_mode
    assert model.moved == 0
    assert model.grad_enabled == [False]
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[n], p) for n, p in model.named_parameters())
    assert all(p.device.type == "cpu" for p in model.parameters())


def test_model_is_evaluated_in_eval_mode():
    X, y = _points()
    seen = []

    class ModeSpy(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(2, 1)

        def forward(self, x):
            seen.append(self.training)
            return self.linear(x)

    model = ModeSpy().train()
    plot_decision_boundary(model, X, y)
    assert seen == [False] and model.training


def test_model_error_still_restores_mode():
    class Broken(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(2, 1)

        def forward(self, x):
            raise RuntimeError("boom")

    model = Broken().train()
    with pytest.raises(RuntimeError, match="boom"):
        plot_decision_boundary(model, *_points())
    assert model.training


@pytest.mark.parametrize("X, y, match", [
    (torch.zeros(5, 3), torch.zeros(5), r"\(N, 2\)"),
    (torch.zeros(5, 2), torch.zeros(4), "5 rows but y has 4"),
])
def test_bad_inputs_raise_clear_errors(X, y, match):
    with pytest.raises(ValueError, match=match):
        plot_decision_boundary(nn.Linear(2, 1), X, y)


def test_bad_outputs_argument():
    with pytest.raises(ValueError, match="outputs"):
        plot_decision_boundary(nn.Linear(2, 1), *_points(), outputs="labels")


def test_plot_predictions_draws_three_series():
    x = torch.arange(0, 1, 0.01).unsqueeze(1)
    y = 0.7 * x + 0.3
    ax = plot_predictions(x[:80], y[:80], x[80:], y[80:], predictions=y[80:] + 0.01)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["training data", "test data", "predictions"]
    with pytest.raises(ValueError, match="predictions"):
        plot_predictions(x[:80], y[:80], x[80:], y[80:], predictions=y[:5])


def test_plot_loss_curves_with_and_without_accuracy():
    fig = plot_loss_curves({"train_loss": [1.0, 0.5, 0.2]})
    assert len(fig.axes) == 1
    history = {"train_loss": [1, 0.5], "test_loss": [1.1, 0.6], "train_acc": [50, 80], "test_acc": [48, 75]}
    fig = plot_loss_curves(history, epochs=[0, 10])
    assert len(fig.axes) == 2
    assert list(fig.axes[0].lines[0].get_xdata()) == [0, 10]
    plt.close("all")


@pytest.mark.parametrize("history, match", [
    ({"train_acc": [1]}, "train_loss"),
    ({"train_loss": [1, 2], "test_loss": [1]}, "same length"),
    ([1, 2, 3], None),
])
def test_plot_loss_curves_rejects_bad_history(history, match):
    with pytest.raises((ValueError, TypeError), match=match):
        plot_loss_curves(history)


def test_plot_image_grid_titles():
    images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 5, 9, 3, 3, 1])
    fig = plot_image_grid(images, labels, ncols=4)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == [CIFAR10_CLASSES[int(t)] for t in labels]
    normalized = (images[:3].float() / 255 - 0.5) / 0.25
    fig = plot_image_grid(normalized, labels[:3], predictions=[0, 5, 8], mean=[0.5] * 3, std=[0.25] * 3)
    colours = [ax.title.get_color() for ax in fig.axes if ax.get_title()]
    assert len(colours) == 3 and "green" in colours and "red" in colours
    plt.close("all")
