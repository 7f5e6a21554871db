"""Each check passes on a correct object and fails on a wrong one with a message that names
what is wrong and what was expected."""
import pytest
import torch
from torch import nn

from helpers import checks
from helpers.checks import CheckFailed, check_activations, check_dropout, traced_calls


def fails(func, *args, match, **kwargs):
    with pytest.raises(CheckFailed, match=match):
        func(*args, **kwargs)


def test_check_failed_is_an_assertion_error():
    assert issubclass(CheckFailed, AssertionError)


def test_type_and_tensor():
    checks.check_type(torch.zeros(1), torch.Tensor, "X")
    fails(checks.check_type, [1, 2], torch.Tensor, "X", match="X should be a Tensor but is a list")
    fails(checks.check_type, 1, (nn.Module, torch.Tensor), "m", match="Module or Tensor")
    checks.check_tensor(torch.zeros(2, 3), "X", shape=(2, 3), dtype=torch.float32)
    fails(checks.check_tensor, torch.zeros(2, 3), "X", shape=(3, 2), match=r"X has shape \(2, 3\); expected \(3, 2\)")
    fails(checks.check_tensor, torch.zeros(2), "y", dtype=torch.int64, match="dtype torch.float32; expected torch.int64")


def test_shape_wildcards_and_hint():
    checks.check_shape(torch.zeros(7, 2), (None, 2), "X")
    fails(checks.check_shape, torch.zeros(2000, 2), (1600, 2), "X_train",
          hint="did you split before converting?",
          match=r"X_train has shape \(2000, 2\); expected \(1600, 2\)\. Hint: did you split")
    fails(checks.check_shape, 3, (1,), "x", match="is a int")


def test_values_and_close():
    checks.check_values(torch.tensor([[0.0], [1.0]]), [[0], [1]], "y")
    fails(checks.check_values, torch.tensor([0.0, 1.0]), [[0], [1]], "y", match=r"expected \[\[0\], \[1\]\]")
    checks.check_close(0.1 + 0.2, 0.3, "sum")
    fails(checks.check_close, 1.0, 2.0, "acc", match="acc is 1; expected 2")
    fails(checks.check_close, torch.zeros(3), torch.ones(3), "out", match="off by up to 1")
    fails(checks.check_close, torch.zeros(3), torch.ones(2), "out", match="shape")


def test_loss_fn():
    checks.check_loss_fn(nn.BCEWithLogitsLoss(), nn.BCEWithLogitsLoss)
    fails(checks.check_loss_fn, nn.BCELoss, nn.BCELoss, match="the class BCELoss, not a loss object")
    fails(checks.check_loss_fn, nn.MSELoss(), nn.BCELoss, match="loss_fn should be a BCELoss but is a MSELoss")


def test_optimizer_holds_exactly_the_models_parameters():
    model, other = nn.Linear(2, 1), nn.Linear(2, 1)
    checks.check_optimizer(torch.optim.SGD(model.parameters(), lr=0.1), model, lr=0.1)
    checks.check_optimizer(torch.optim.Adam(model.parameters()), model)
    fails(checks.check_optimizer, torch.optim.SGD(other.parameters(), lr=0.1), model, match="2 of the model's")
    fails(checks.check_optimizer, torch.optim.SGD(model.parameters(), lr=0.01), model, lr=0.1, match="learning rate")
    fails(checks.check_optimizer, torch.optim.Adam(model.parameters()), model, kinds=torch.optim.SGD,
          match="should be a SGD but is a Adam")
    both = torch.optim.SGD(list(model.parameters()) + list(other.parameters()), lr=0.1)
    fails(checks.check_optimizer, both, model, match="it should not update")


def test_optimizer_params_ignores_frozen_ones():
    backbone, head = nn.Linear(4, 4), nn.Linear(4, 2)
    for p in backbone.parameters():
        p.requires_grad_(False)
    whole = nn.Sequential(backbone, head)
    checks.check_optimizer(torch.optim.SGD(head.parameters(), lr=0.1), whole)


def test_history():
    checks.check_history([1.0, 0.5, 0.2], "loss_values", length=3, decreasing=True)
    fails(checks.check_history, (1.0, 0.5), "loss_values", match="should be a list")
    fails(checks.check_history, [1.0], "loss_values", length=3, match="1 entries; expected 3")
    fails(checks.check_history, [], "loss_values", match="empty")
    fails(checks.check_history, [torch.tensor(1.0)], "loss_values", match=r"loss\.item\(\)")
    fails(checks.check_history, [1.0, float("nan")], "loss_values", match="NaN")
    fails(checks.check_history, [0.5, 0.7], "loss_values", decreasing=True, match="did not go down")


def test_no_nonlinearity_and_affinity():
    linear_stack = nn.Sequential(nn.Linear(2, 10), nn.Linear(10, 10), nn.Linear(10, 1))
    relu_stack = nn.Sequential(nn.Linear(2, 10), nn.ReLU(), nn.Linear(10, 1))
    checks.check_no_nonlinearity(linear_stack)
    fails(checks.check_no_nonlinearity, relu_stack, match="1: ReLU")
    checks.check_is_affine(linear_stack, 2)
    fails(checks.check_is_affine, relu_stack, 2, match="not affine")
    checks.check_not_affine(relu_stack, 2)
    fails(checks.check_not_affine, linear_stack, 2, match="straight decision boundary")


def test_affinity_catches_functional_nonlinearity_and_restores_mode():
    class Sneaky(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(2, 8), nn.Linear(8, 1)

        def forward(self, x):
            return self.b(torch.tanh(self.a(x)))

    model = Sneaky().train()
    checks.check_no_nonlinearity(model)  # no activation module to see ...
    fails(checks.check_is_affine, model, 2, match="not affine")  # ... but the maths tells
    assert model.training


def test_thresholds():
    checks.check_at_least(95.0, 90, "accuracy")
    fails(checks.check_at_least, 50.0, 90, "test accuracy", match="test accuracy is 50; expected at least 90")
    fails(checks.check_at_least, float("nan"), 90, "acc", match="nan")
    checks.check_at_most(0.1, 0.2, "MAE")
    fails(checks.check_at_most, 0.3, 0.2, "MAE", match="at most 0.2")
    checks.check_between(50, 40, 60, "accuracy")
    fails(checks.check_between, 70, 40, 60, "accuracy", match="between 40 and 60")


def test_same_outputs_and_state_dict_file(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 3), nn.Dropout(0.5), nn.Linear(3, 1)).train()
    copy = nn.Sequential(nn.Linear(2, 3), nn.Dropout(0.5), nn.Linear(3, 1))
    X = torch.randn(5, 2)
    fails(checks.check_same_outputs, model, copy, X, match="different outputs")
    fails(checks.check_same_outputs, model, model, X, match="very same object")
    path = tmp_path / "m.pth"
    torch.save(model.state_dict(), path)
    state = checks.check_state_dict_file(path)
    copy.load_state_dict(state)
    checks.check_same_outputs(model, copy, X)  # dropout is off: both are evaluated in eval mode
    assert model.training

    fails(checks.check_state_dict_file, tmp_path / "missing.pth", match="does not exist")
    torch.save(model, tmp_path / "whole.pth")
    fails(checks.check_state_dict_file, tmp_path / "whole.pth", match="weights_only=True")
    torch.save({"a": 1}, tmp_path / "other.pth")
    fails(checks.check_state_dict_file, tmp_path / "other.pth", match="not a state_dict")


def test_checks_never_print_or_warn(capsys, recwarn):
    model = nn.Sequential(nn.Linear(2, 4), nn.Linear(4, 1))
    checks.check_is_affine(model, 2)
    checks.check_optimizer(torch.optim.SGD(model.parameters(), lr=0.1), model)
    with pytest.raises(CheckFailed):
        checks.check_at_least(1, 2, "x")
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    assert len(recwarn) == 0


class _Functional(nn.Module):
    """Activations and dropout written as functions, not modules."""

    def __init__(self, training_flag=True):
        super().__init__()
        self.linear = nn.Linear(8, 4)
        self.bn = nn.BatchNorm1d(8)
        self.training_flag = training_flag

    def forward(self, x):
        h = torch.nn.functional.relu(self.bn(x))
        training = self.training if self.training_flag else True
        return self.linear(torch.nn.functional.dropout(h, 0.5, training)).relu()


def test_activations_counted_whether_module_or_functional():
    x = torch.randn(6, 8)
    check_activations(_Functional(), x, at_least=2)
    check_activations(nn.Sequential(nn.Linear(8, 4), nn.ReLU(inplace=True), nn.Linear(4, 2), nn.GELU()), x, 2)
    with pytest.raises(CheckFailed, match="applies 1 activation"):
        check_activations(nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 2)), x, at_least=2)
    names = [name for name, _, _ in traced_calls(nn.Sequential(nn.Linear(8, 4), nn.Tanh()), x)]
    assert names == ["linear", "tanh"]


def test_dropout_module_or_functional_rate_and_mode():
    x = torch.randn(6, 8)
    model = _Functional()
    stats = model.bn.running_mean.clone()
    check_dropout(model, x, p=0.5)
    check_dropout(nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.3)), x, p=0.3)
    assert torch.equal(model.bn.running_mean, stats) and model.training  # no side effects
    with pytest.raises(CheckFailed, match="rate"):
        check_dropout(nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.3)), x, p=0.5)
    with pytest.raises(CheckFailed, match="no dropout"):
        check_dropout(nn.Linear(8, 8), x)
    with pytest.raises(CheckFailed, match="evaluation mode"):
        check_dropout(_Functional(training_flag=False), x)


def test_recompute_accuracy_matches_torchmetrics_and_restores_mode():
    from torchmetrics.classification import MulticlassAccuracy

    torch.manual_seed(0)
    x, y = torch.randn(1234, 6), torch.randint(0, 4, (1234,))
    model = nn.Sequential(nn.Linear(6, 16), nn.Dropout(0.5), nn.Linear(16, 4))
    model.train()
    dataset = torch.utils.data.TensorDataset(x, y)
    got = checks.recompute_accuracy(model, dataset, batch_size=100)
    assert model.training
    model.eval()
    with torch.no_grad():
        expected = MulticlassAccuracy(num_classes=4, average="micro")(model(x), y).item() * 100
    assert abs(got - expected) < 1e-4


def test_temporary_mode_restores_the_mode_even_on_error():
    from helpers.model_utils import model_device, temporary_mode

    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout())
    with temporary_mode(model):
        assert not model.training and not model[1].training
    assert model.training
    model.eval()
    with pytest.raises(RuntimeError), temporary_mode(model, train=True):
        assert model.training
        raise RuntimeError("boom")
    assert not model.training
    assert model_device(model) == torch.device("cpu") and model_device(nn.ReLU()) == torch.device("cpu")


def test_check_runs_turns_an_exception_into_one_message():
    assert checks.check_runs(lambda a, b=0: a + b, 1, b=2, call="add") == 3
    layer = nn.Linear(2, 1)
    fails(checks.check_runs, layer, torch.zeros(5, 3), call="Perceptron(3, 2)(x)", hint="use in_features",
          match=r"Perceptron\(3, 2\)\(x\) raised RuntimeError: mat1 and mat2 .*Hint: use in_features")
    try:
        checks.check_runs(layer, torch.zeros(5, 3), call="f")
    except CheckFailed as failure:  # no chained library traceback behind the message
        assert failure.__context__ is None and failure.__cause__ is None


# train_step variants and mutants: each is the exercise written differently.
def _written(skip=(), order=("zero_grad", "backward", "step"), result="item", train=True, forward="call"):
    def step(model, X, y, loss_fn, optimizer):
        if train:
            model.train()
        loss = loss_fn(model(X) if forward == "call" else model.forward(X), y)
        actions = {"zero_grad": optimizer.zero_grad, "backward": loss.backward, "step": optimizer.step}
        for action in order:
            if action not in skip:
                actions[action]()
        if result == "after":
            return loss_fn(model(X), y).item()
        return loss.item() if result == "item" else loss
    return step


_step = _written()


def _model_zero_grad(model, X, y, loss_fn, optimizer):
    model.train()
    model.zero_grad()
    loss = loss_fn(model(X), y)
    loss.backward()
    optimizer.step()
    return float(loss)  # torch warns here; the check keeps the warning out of the test cell


@pytest.mark.parametrize("step", [_step, _written(order=("backward", "step", "zero_grad")), _model_zero_grad])
def test_train_step_accepts_valid_orders(step, capsys, recwarn):
    torch.manual_seed(0)
    X, y = torch.rand(6, 3), torch.tensor([[0.0], [1.0], [1.0], [0.0], [1.0], [0.0]])
    model = nn.Sequential(nn.Linear(3, 1), nn.Sigmoid())
    before = nn.BCELoss()(model(X), y).item()
    assert checks.check_train_step(step, model, X, y, nn.BCELoss(), lr=0.3) == pytest.approx(before)
    assert nn.BCELoss()(model(X), y).item() < before  # the step was taken on the model given
    assert not hasattr(model, "zero_grad") or model.zero_grad.__func__ is nn.Module.zero_grad  # spy removed
    assert capsys.readouterr().err == "" and len(recwarn) == 0


@pytest.mark.parametrize("step, match", [
    (_written(skip=("zero_grad",)), r"never calls optimizer.zero_grad\(\)"),
    (_written(skip=("step",)), r"never calls optimizer.step\(\).*weights never change"),
    (_written(skip=("backward",)), r"never calls loss.backward\(\)"),
    (_written(order=("zero_grad", "step", "backward")), r"step\(\) before loss.backward\(\)"),
    (_written(order=("backward", "zero_grad", "step")), r"zero_grad\(\) between loss.backward\(\) and"),
    (_written(result="tensor"), r"returned a tensor .*loss.item\(\)"),
    (_written(result="after"), r"before the update"),
    (_written(train=False), r"evaluation mode: call model.train\(\)"),
    (_written(forward="method"), r"not model.forward\(X\)"),
    (lambda model, X, y, loss_fn, optimizer: _step(nn.Linear(3, 1), X, y, nn.MSELoss(), optimizer),
     "never called the model it was given: use its arguments"),
    (lambda model, X, y, loss_fn, optimizer: _step(model, torch.zeros(4, 2), y, loss_fn, optimizer),
     r"raised RuntimeError: mat1 and mat2.* Hint: train_step must work for any model and data"),
])
def test_train_step_mutants_get_the_fix_named(step, match):
    X, y = torch.rand(6, 3), torch.ones(6, 1)
    fails(checks.check_train_step, step, nn.Sequential(nn.Linear(3, 1), nn.Sigmoid()), X, y, nn.BCELoss(),
          match=match)


def test_train_step_with_another_loss_reveals_the_notebooks_loss_fn():
    X, y = torch.rand(6, 3), torch.rand(6, 1)
    uses_bce = lambda model, X, y, loss_fn, optimizer: _step(model, X, y, nn.BCELoss(), optimizer)  # noqa: E731
    fails(checks.check_train_step, uses_bce, nn.Sequential(nn.Linear(3, 1), nn.Sigmoid()), X, y, nn.MSELoss(),
          match="differently from one gradient step")


def test_check_predict_judges_mode_and_gradients():
    X = torch.rand(5, 2)
    model = nn.Sequential(nn.Linear(2, 1), nn.Sigmoid())

    def predict(model, X):
        model.eval()
        with torch.inference_mode():
            return (model(X) > 0.5).float()

    out = checks.check_predict(predict, model, X)
    assert out.shape == (5, 1) and not model.training
    fails(checks.check_predict, lambda m, X: (m(X) > 0.5).float(), model, X, match="training mode: call model.eval")
    fails(checks.check_predict, lambda m, X: (m.eval()(X) > 0.5).float(), model, X, match="inference_mode")
    fails(checks.check_predict, lambda m, X: torch.ones(5, 1), model, X, match="never called the model")
    fails(checks.check_predict, lambda m, X: m.eval()(X[:, :1]), model, X, match=r"raised RuntimeError.*use its arguments")


def test_check_choice_validates_format_only():
    assert checks.check_choice(" b ", "ABCD", "lr_prediction") == "B"
    fails(checks.check_choice, "slower", "ABCD", "lr_prediction", match=r"one letter: 'A', 'B', 'C', 'D'")
    fails(checks.check_choice, 2, "ABCD", "lr_prediction", match="is 2")
    fails(checks.check_choice, "E", "ABCD", "lr_prediction", match="one letter")


def _epoch(order="shuffled", weighted=True, zero_grad=True, full_batch=False, last_only=False):
    """A train_epoch written as students write it, with one chosen mistake."""
    def train_epoch(model, X, y, loss_fn, optimizer, batch_size):
        model.train()
        n = len(X)
        rows = torch.randperm(n) if order == "shuffled" else torch.arange(n)
        size = n if full_batch else batch_size
        total, losses = 0.0, []
        for start in range(0, n, size):
            batch = rows[start:start + size]
            loss = loss_fn(model(X[batch]), y[batch])
            if zero_grad:
                optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
            losses.append(loss.item())
        if last_only:
            return losses[-1]
        return total / n if weighted else sum(losses) / len(losses)
    return train_epoch


def _epoch_data():
    torch.manual_seed(0)
    X = torch.randn(10, 2)
    y = (X[:, :1] > 0).float()
    model = nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.mul_(8)  # batch losses far apart, so the ways of averaging them differ
    return model, X, y


def test_train_epoch_accepts_the_written_one():
    model, X, y = _epoch_data()
    loss = checks.check_train_epoch(_epoch(), model, X, y, nn.BCEWithLogitsLoss(), batch_size=4)
    assert isinstance(loss, float)


@pytest.mark.parametrize("kwargs", [dict(order="fixed"), dict(weighted=False), dict(zero_grad=False),
                                    dict(full_batch=True), dict(last_only=True)])
def test_train_epoch_mutants_fail(kwargs):
    model, X, y = _epoch_data()
    with pytest.raises(checks.CheckFailed):
        checks.check_train_epoch(_epoch(**kwargs), model, X, y, nn.BCEWithLogitsLoss(), batch_size=4)


def test_scheduler_steps_sized_in_epochs_fail_and_leave_the_real_one_alone():
    model = nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    good = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, epochs=3, steps_per_epoch=5)
    lr = optimizer.param_groups[0]["lr"]
    checks.check_scheduler_steps(good, 15)
    assert good.last_epoch == 0 and optimizer.param_groups[0]["lr"] == lr
    sized_in_epochs = torch.optim.lr_scheduler.OneCycleLR(torch.optim.SGD(model.parameters(), lr=0.1),
                                                          max_lr=0.1, total_steps=3)
    with pytest.raises(checks.CheckFailed, match=r"stepped 15 times .* step 4 failed"):
        checks.check_scheduler_steps(sized_in_epochs, 15)
