"""check_full_batch_fit (lab 06): a correct full-batch fit with a validation history passes, in
its valid styles; each procedural mistake fails with a message that names it."""
import pytest
import torch
from torch import nn

from helpers import accuracy_fn
from helpers.checks import CheckFailed, check_full_batch_fit

gen = torch.Generator().manual_seed(1)
X_TR, Y_TR = torch.rand(12, 4, generator=gen) * 6, torch.randint(0, 3, (12,), generator=gen)
X_VA, Y_VA = 100 + torch.rand(5, 4, generator=gen), torch.randint(0, 3, (5,), generator=gen)


def make_fit(zero="optimizer", train_mode=True, eval_mode=True, no_grad=True, train_rows="train", val_rows="val",
             acc_scale=100.0, record_tensor=False, order=("zero", "backward", "step"), epochs_extra=0,
             val_loss_from_train=False, eval_before_step=False):
    """A fit with one knob per mistake; the defaults are the reference."""
    def fit(model, loss_fn, optimizer, X_train, y_train, X_val, y_val, epochs):
        data = {"train": (X_train, y_train), "val": (X_val, y_val),
                "both": (torch.cat([X_train, X_val]), torch.cat([y_train, y_val]))}
        history = {"train_loss": [], "train_acc": [], "val_loss": [], "val_acc": []}

        def validate():
            if eval_mode:
                model.eval()
            Xv, yv = data[val_rows]
            with (torch.inference_mode() if no_grad else torch.enable_grad()):
                out = model(Xv)
                history["val_loss"].append(loss.item() if val_loss_from_train else loss_fn(out, yv).item())
                history["val_acc"].append(acc_scale / 100 * accuracy_fn(yv, out.argmax(dim=1)))

        for _ in range(epochs + epochs_extra):
            if train_mode:
                model.train()
            Xt, yt = data[train_rows]
            logits = model(Xt)
            loss = loss_fn(logits, yt)
            if eval_before_step:
                validate()
            for action in order:
                if action == "zero" and zero == "optimizer":
                    optimizer.zero_grad()
                elif action == "zero" and zero == "model":
                    model.zero_grad()
                elif action == "backward":
                    loss.backward()
                elif action == "step":
                    optimizer.step()
            history["train_loss"].append(loss if record_tensor else loss.item())
            history["train_acc"].append(accuracy_fn(yt, logits.argmax(dim=1)))
            if not eval_before_step:
                validate()
        return history
    return fit


def run(fit, loss_fn=None):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    return check_full_batch_fit(fit, model, X_TR, Y_TR, X_VA, Y_VA, loss_fn or nn.CrossEntropyLoss(), epochs=3)


@pytest.mark.parametrize("knobs", [{}, {"zero": "model"}, {"order": ("backward", "step", "zero")}])
def test_valid_styles_pass(knobs):
    history = run(make_fit(**knobs))
    assert sorted(history) == ["train_acc", "train_loss", "val_acc", "val_loss"]
    assert len(history["val_acc"]) == 3


def test_other_loss_is_used_for_expected_values():
    run(make_fit(), loss_fn=nn.CrossEntropyLoss(label_smoothing=0.1))


@pytest.mark.parametrize("knobs, match", [
    ({"zero": None}, r"never calls optimizer.zero_grad\(\)"),
    ({"order": ("backward", "zero", "step")}, "between loss.backward"),
    ({"order": ("zero", "step", "backward")}, r"before loss.backward\(\)"),
    ({"train_mode": False}, "training pass in evaluation mode"),
    ({"eval_mode": False}, "validation rows in training mode"),
    ({"no_grad": False}, "tracked gradients while evaluating"),
    ({"train_rows": "both"}, "not exactly its X_train or its X_val"),
    ({"train_rows": "val"}, "backward\\(\\) on a loss computed from the validation rows"),
    ({"val_rows": "train"}, "never ran the model on X_val but evaluated the training rows"),
    ({"acc_scale": 1.0}, "holds fractions"),
    ({"record_tensor": True}, "train_loss"),
    ({"epochs_extra": 1}, "full-batch training makes exactly one"),
    ({"val_loss_from_train": True}, "history\\['val_loss'\\]\\[0\\]"),
    ({"eval_before_step": True}, "did not evaluate X_val after epoch 3"),
])
def test_mistakes_fail_with_their_message(knobs, match):
    with pytest.raises(CheckFailed, match=match):
        run(make_fit(**knobs))


def test_zero_grad_once_before_the_loop_fails():
    inner = make_fit(zero=None)

    def fit(model, loss_fn, optimizer, *rest):
        optimizer.zero_grad()
        return inner(model, loss_fn, optimizer, *rest)

    with pytest.raises(CheckFailed, match="does not clear the gradients before every"):
        run(fit)


def test_notebook_variables_instead_of_arguments_fail():
    X_other = torch.rand(12, 4) - 50

    def fit(model, loss_fn, optimizer, X_train, y_train, X_val, y_val, epochs):
        return make_fit()(model, loss_fn, optimizer, X_other, y_train, X_val, y_val, epochs)

    with pytest.raises(CheckFailed, match="use the arguments"):
        run(fit)


def test_an_error_in_fit_becomes_one_message():
    def fit(model, loss_fn, optimizer, X_train, y_train, X_val, y_val, epochs):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    with pytest.raises(CheckFailed, match="raised RuntimeError: mat1 and mat2"):
        run(fit)
