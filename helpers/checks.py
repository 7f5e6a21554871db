"""Generic assertions for the labs' test cells, with messages a student can act on.

Each check raises ``CheckFailed`` (an ``AssertionError``) whose message says what is wrong,
what was expected and, where it helps, a hint. Exercise-specific values (expected shapes,
truth tables, accuracy thresholds) stay in the notebooks; this module only knows how to
compare and explain. Checks never print and never warn: nbgrader scores a test cell that
writes to stderr as failed.
"""
from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from helpers.model_utils import model_device, temporary_mode

__all__ = [
    "CheckFailed",
    "check_type",
    "check_shape",
    "check_dtype",
    "check_tensor",
    "check_values",
    "check_close",
    "check_loss_fn",
    "check_optimizer",
    "check_optimizer_params",
    "check_history",
    "check_no_nonlinearity",
    "check_is_affine",
    "check_not_affine",
    "check_activations",
    "check_dropout",
    "traced_calls",
    "recompute_accuracy",
    "check_at_least",
    "check_at_most",
    "check_between",
    "check_same_outputs",
    "check_state_dict_file",
    "check_runs",
    "check_train_step",
    "check_predict",
    "check_choice",
    "check_train_epoch",
    "describe",
]


class CheckFailed(AssertionError):
    """A check did not pass. The message is meant for the student."""


def _fail(message: str, hint: str | None = None) -> None:
    raise CheckFailed(message + (f" Hint: {hint}" if hint else ""))


def describe(obj) -> str:
    """A short description of ``obj`` for messages: type, shape and dtype where relevant."""
    if isinstance(obj, torch.Tensor):
        return f"a tensor of shape {tuple(obj.shape)} and dtype {obj.dtype}"
    if hasattr(obj, "shape") and hasattr(obj, "dtype"):
        return f"a {type(obj).__name__} of shape {tuple(obj.shape)} and dtype {obj.dtype}"
    return f"a {type(obj).__name__}"


def check_type(obj, expected: type | tuple[type, ...], name: str, hint: str | None = None) -> None:
    """``obj`` is an instance of ``expected`` (a class or tuple of classes)."""
    if not isinstance(obj, expected):
        names = (" or ".join(t.__name__ for t in expected) if isinstance(expected, tuple)
                 else expected.__name__)
        _fail(f"{name} should be a {names} but is {describe(obj)}.", hint)


def check_shape(tensor, expected: Sequence[int], name: str, hint: str | None = None) -> None:
    """``tensor.shape`` equals ``expected``; use ``None`` in ``expected`` for "any size"."""
    if not hasattr(tensor, "shape"):
        _fail(f"{name} should have shape {tuple(expected)} but is {describe(tensor)}.", hint)
    actual = tuple(tensor.shape)
    ok = len(actual) == len(expected) and all(e is None or a == e for a, e in zip(actual, expected))
    if not ok:
        shown = tuple("any" if e is None else e for e in expected)
        _fail(f"{name} has shape {actual}; expected {shown}.", hint)


def check_dtype(tensor, expected: torch.dtype, name: str, hint: str | None = None) -> None:
    """``tensor.dtype`` is ``expected``."""
    actual = getattr(tensor, "dtype", None)
    if actual != expected:
        _fail(f"{name} has dtype {actual}; expected {expected}.", hint)


def check_tensor(tensor, name: str, shape: Sequence[int] | None = None,
                 dtype: torch.dtype | None = None, hint: str | None = None) -> None:
    """``tensor`` is a ``torch.Tensor`` with the given shape and dtype (either may be None)."""
    check_type(tensor, torch.Tensor, name, hint)
    if shape is not None:
        check_shape(tensor, shape, name, hint)
    if dtype is not None:
        check_dtype(tensor, dtype, name, hint)


def check_values(tensor, expected, name: str, hint: str | None = None) -> None:
    """``tensor`` equals ``expected`` exactly (same shape, same values)."""
    expected_t = torch.as_tensor(expected)
    actual = torch.as_tensor(tensor).detach().cpu()
    if actual.shape != expected_t.shape or not torch.equal(actual.to(expected_t.dtype), expected_t):
        _fail(f"{name} is {actual.tolist()}; expected {expected_t.tolist()}.", hint)


def check_close(actual, expected, name: str, atol: float = 1e-6, rtol: float = 1e-5,
                hint: str | None = None) -> None:
    """Numbers or tensors ``actual`` and ``expected`` agree within tolerances."""
    a = torch.as_tensor(actual, dtype=torch.float64).detach().cpu()
    e = torch.as_tensor(expected, dtype=torch.float64).detach().cpu()
    if a.shape != e.shape:
        _fail(f"{name} has shape {tuple(a.shape)}; expected {tuple(e.shape)}.", hint)
    if not torch.allclose(a, e, atol=atol, rtol=rtol):
        worst = (a - e).abs().max().item()
        shown = f"{a.item():.6g}; expected {e.item():.6g}" if a.numel() == 1 else \
            f"off by up to {worst:.3g} from the expected values"
        _fail(f"{name} is {shown}.", hint)


def check_loss_fn(loss_fn, expected: type | tuple[type, ...], name: str = "loss_fn",
                  hint: str | None = None) -> None:
    """``loss_fn`` is an instance of the expected loss class(es), e.g. ``nn.BCELoss``."""
    if isinstance(loss_fn, type):
        _fail(f"{name} is the class {loss_fn.__name__}, not a loss object.",
              hint or f"create an instance: {loss_fn.__name__}()")
    check_type(loss_fn, expected, name, hint)


def check_optimizer(optimizer, model: nn.Module, name: str = "optimizer",
                    kinds: type | tuple[type, ...] = torch.optim.Optimizer,
                    lr: float | None = None, hint: str | None = None) -> None:
    """``optimizer`` is a torch optimizer of the allowed kind(s) that updates every trainable
    parameter of ``model`` (and nothing else), optionally with learning rate ``lr``."""
    check_type(optimizer, kinds, name, hint)
    check_optimizer_params(optimizer, model.parameters(), name, what="the model's", hint=hint)
    if lr is not None:
        lrs = {group["lr"] for group in optimizer.param_groups}
        if lrs != {lr}:
            _fail(f"{name} has learning rate {sorted(lrs)}; expected lr={lr}.", hint)


def check_optimizer_params(optimizer, params: Iterable[torch.Tensor], name: str = "optimizer",
                           what: str = "the expected", hint: str | None = None) -> None:
    """The optimizer holds exactly ``params`` (those with ``requires_grad``), by identity."""
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    wanted = {id(p) for p in params if p.requires_grad}
    if held != wanted:
        missing, extra = len(wanted - held), len(held - wanted)
        details = []
        if missing:
            details.append(f"{missing} of {what} parameter tensors are missing")
        if extra:
            details.append(f"it holds {extra} parameter tensor(s) it should not update")
        _fail(f"{name} does not hold exactly {what} trainable parameters: {'; '.join(details)}.",
              hint or "create the optimizer from the right model's .parameters(), after the model.")


def check_history(values, name: str, length: int | None = None, decreasing: bool = False,
                  hint: str | None = None) -> None:
    """A recorded curve: a list of Python numbers (not tensors), optionally of a given length,
    optionally ending lower than it started."""
    check_type(values, list, name, hint)
    if length is not None and len(values) != length:
        _fail(f"{name} has {len(values)} entries; expected {length}.", hint)
    if not values:
        _fail(f"{name} is empty.", hint)
    bad = [v for v in values if isinstance(v, torch.Tensor) or not isinstance(v, (int, float))]
    if bad:
        _fail(f"{name} holds {describe(bad[0])}; record plain numbers: append loss.item() (a float), "
              "not the loss tensor, which keeps every epoch's computation graph alive.", hint)
    if any(not math.isfinite(v) for v in values):
        _fail(f"{name} contains NaN or infinite values: the training diverged.",
              hint or "try a smaller learning rate.")
    if decreasing and not values[-1] < values[0]:
        _fail(f"{name} did not go down: first {values[0]:.4g}, last {values[-1]:.4g}.",
              hint or "is optimizer.step() called, on an optimizer that holds this model's parameters?")


_NONLINEAR = (nn.ReLU, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU,
              nn.Mish, nn.Sigmoid, nn.Tanh, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid,
              nn.Softplus, nn.Softsign, nn.Softmax, nn.LogSoftmax, nn.Tanhshrink, nn.Threshold,
              nn.ReLU6, nn.RReLU, nn.LogSigmoid, nn.Softshrink, nn.Hardshrink)


def check_no_nonlinearity(model: nn.Module, name: str = "model", hint: str | None = None) -> None:
    """``model`` contains no activation-function modules (ReLU, Sigmoid, Tanh, ...)."""
    found = [f"{mod_name or name}: {type(mod).__name__}" for mod_name, mod in model.named_modules()
             if isinstance(mod, _NONLINEAR)]
    if found:
        _fail(f"{name} contains non-linear layers ({', '.join(found)}); this exercise asks for "
              "Linear layers only.", hint)


def _affine_gap(model: nn.Module, n_features: int, n_points: int = 64, seed: int = 0) -> float:
    """Largest |f(a u + (1-a) v) - (a f(u) + (1-a) f(v))| over random points, relative to the
    output scale. Zero (up to rounding) exactly when ``model`` is affine on those points."""
    gen = torch.Generator().manual_seed(seed)
    device = model_device(model)
    u = (torch.randn(n_points, n_features, generator=gen) * 2).to(device)
    v = (torch.randn(n_points, n_features, generator=gen) * 2).to(device)
    a = torch.rand(n_points, 1, generator=gen).to(device) * 3 - 1  # also extrapolate
    with temporary_mode(model), torch.inference_mode():
        fu, fv = model(u).double(), model(v).double()
        fm = model(a * u + (1 - a) * v).double()
    a = a.double()
    gap = (fm - (a * fu + (1 - a) * fv)).abs().max().item()
    scale = max(fu.abs().max().item(), fv.abs().max().item(), 1.0)
    return gap / scale


def check_is_affine(model: nn.Module, n_features: int, name: str = "model",
                    tol: float = 1e-4, hint: str | None = None) -> None:
    """``model`` computes an affine function: f(a u + (1-a) v) = a f(u) + (1-a) f(v)."""
    gap = _affine_gap(model, n_features)
    if gap > tol:
        _fail(f"{name} is not affine (relative gap {gap:.2g}): something non-linear is applied "
              "in its forward pass.", hint)


def check_not_affine(model: nn.Module, n_features: int, name: str = "model",
                     tol: float = 1e-3, hint: str | None = None) -> None:
    """``model`` is not affine: some non-linearity acts between its layers."""
    gap = _affine_gap(model, n_features)
    if gap <= tol:
        _fail(f"{name} computes an affine function of its input, however many layers it has: "
              "it can only draw a straight decision boundary.",
              hint or "put a non-linear activation such as nn.ReLU() between the Linear layers.")


#: Element-wise non-linearities, by the name of the torch function that computes them.
ACTIVATION_FUNCTIONS = frozenset({
    "relu", "relu_", "relu6", "leaky_relu", "leaky_relu_", "elu", "elu_", "selu", "celu", "gelu",
    "silu", "mish", "hardswish", "hardtanh", "hardtanh_", "prelu", "rrelu", "softplus", "tanh",
    "sigmoid", "hardsigmoid",
})


class _CallRecorder(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.calls: list[tuple[str, tuple, dict]] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        self.calls.append((getattr(func, "__name__", str(func)), args, kwargs))
        return func(*args, **kwargs)


def traced_calls(model: nn.Module, x: torch.Tensor, train: bool = False) -> list[tuple[str, tuple, dict]]:
    """The torch functions one forward pass of ``model`` calls, in order, as
    ``(name, args, kwargs)``: modules (``nn.ReLU``) and functional calls (``F.relu``,
    ``x.relu()``) alike, so checks judge what the network computes, not how it is written.
    Runs without gradients and restores the model's mode; in training mode it runs a copy, so
    batch-norm statistics of ``model`` stay as they were."""
    if train:
        return _record_calls(copy.deepcopy(model).train(), x)
    with temporary_mode(model):
        return _record_calls(model, x)


def _record_calls(model: nn.Module, x: torch.Tensor) -> list[tuple[str, tuple, dict]]:
    """The calls of one forward pass, in the model's current mode (no copy, no mode change)."""
    with torch.no_grad(), _CallRecorder() as recorder:
        model(x)
    return recorder.calls


def check_activations(model: nn.Module, x: torch.Tensor, at_least: int, name: str = "model",
                      hint: str | None = None) -> None:
    """A forward pass of ``model`` on ``x`` applies at least ``at_least`` non-linear
    activations (module or functional)."""
    found = [call[0] for call in traced_calls(model, x) if call[0] in ACTIVATION_FUNCTIONS]
    if len(found) < at_least:
        _fail(f"{name} applies {len(found)} activation function(s) in its forward pass "
              f"({', '.join(found) or 'none'}); the specified network has {at_least}.",
              hint or "put a ReLU after every convolution and between the Linear layers.")


def _dropout_rate(args: tuple, kwargs: dict) -> float:
    if "p" in kwargs:
        return float(kwargs["p"])
    return float(args[1]) if len(args) > 1 and not isinstance(args[1], torch.Tensor) else 0.5


def check_dropout(model: nn.Module, x: torch.Tensor, p: float | None = None, name: str = "model",
                  hint: str | None = None) -> None:
    """``model`` applies dropout (``nn.Dropout`` or ``F.dropout``; with rate ``p`` if given) that
    is active in training mode and off in evaluation mode. Works on a copy of ``model``."""
    model = copy.deepcopy(model).train()
    rates = [_dropout_rate(args, kwargs) for fname, args, kwargs in _record_calls(model, x)
             if fname in {"dropout", "dropout_", "dropout1d", "dropout2d", "feature_dropout"}]
    if not rates:
        _fail(f"{name} applies no dropout in its forward pass.", hint)
    if p is not None and not any(math.isclose(rate, p) for rate in rates):
        _fail(f"{name} applies dropout with rate(s) {rates}; expected p={p}.", hint)
    with torch.no_grad():
        model.eval()
        same = torch.equal(model(x), model(x))
        model.train()
        differs = any(not torch.equal(model(x), model(x)) for _ in range(3))
    if not same:
        _fail(f"{name} gives different outputs for the same input in evaluation mode: dropout "
              "must follow self.training (nn.Dropout does; F.dropout needs training=self.training).", hint)
    if not differs:
        _fail(f"{name}'s dropout is not active in training mode.",
              hint or "nn.Dropout switches itself on and off with model.train() / model.eval().")


def recompute_accuracy(model: nn.Module, dataset, device=None, batch_size: int = 500) -> float:
    """Accuracy (%) of ``model``'s argmax predictions on every ``(x, label)`` of ``dataset``, in
    evaluation mode and without gradients: what hidden tests measure themselves instead of
    trusting a printed number. The model's mode is restored afterwards."""
    from torch.utils.data import DataLoader

    device = device or model_device(model)
    correct = seen = 0
    with temporary_mode(model), torch.inference_mode():
        for x, y in DataLoader(dataset, batch_size=batch_size):
            correct += (model(x.to(device)).argmax(dim=1).cpu() == y.cpu()).sum().item()
            seen += len(y)
    if not seen:
        raise ValueError("recompute_accuracy: the dataset is empty.")
    return 100 * correct / seen


def check_at_least(value, threshold: float, name: str, hint: str | None = None) -> None:
    """``value >= threshold``."""
    value = float(value)
    if not value >= threshold:
        _fail(f"{name} is {value:.4g}; expected at least {threshold:.4g}.", hint)


def check_at_most(value, threshold: float, name: str, hint: str | None = None) -> None:
    """``value <= threshold``."""
    value = float(value)
    if not value <= threshold:
        _fail(f"{name} is {value:.4g}; expected at most {threshold:.4g}.", hint)


def check_between(value, low: float, high: float, name: str, hint: str | None = None) -> None:
    """``low <= value <= high``."""
    value = float(value)
    if not low <= value <= high:
        _fail(f"{name} is {value:.4g}; expected between {low:.4g} and {high:.4g}.", hint)


def check_same_outputs(model_a: nn.Module, model_b: nn.Module, X: torch.Tensor,
                       name: str = "loaded_model", hint: str | None = None) -> None:
    """Both models, in eval mode, give identical outputs on ``X`` (compared on the CPU)."""
    if model_a is model_b:
        _fail(f"{name} is the very same object as the original model, so comparing them proves "
              "nothing.", hint or "create a new instance and load the saved state_dict into it.")
    outs = []
    for model in (model_a, model_b):
        with temporary_mode(model), torch.inference_mode():
            outs.append(model(X.to(model_device(model))).cpu())
    if outs[0].shape != outs[1].shape or not torch.equal(outs[0], outs[1]):
        _fail(f"{name} gives different outputs from the original model.",
              hint or "load the saved state_dict into the new model with load_state_dict().")


def check_state_dict_file(path, name: str = "the saved file", hint: str | None = None) -> dict:
    """``path`` exists and holds a state_dict (a mapping of names to tensors) that loads with
    ``weights_only=True``. Returns the loaded state_dict."""
    path = Path(path)
    if not path.is_file():
        _fail(f"{name} ({path}) does not exist.", hint or "call torch.save(model.state_dict(), path).")
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - any failure means "not a plain state_dict"
        _fail(f"{name} ({path}) does not load with torch.load(..., weights_only=True): "
              f"{type(exc).__name__}. Save model.state_dict(), not the whole model.", hint)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        _fail(f"{name} ({path}) holds {describe(state)}, not a state_dict of tensors.",
              hint or "save model.state_dict(), not the model or something else.")
    return state


def check_runs(fn, *args, call: str, hint: str | None = None, **kwargs):
    """``fn(*args, **kwargs)``, returned; an exception it raises becomes one CheckFailed naming
    ``call``, the error's type and first line and the hint, instead of a long library traceback
    (e.g. "Perceptron(3, 2)(x) raised RuntimeError: mat1 and mat2 shapes cannot be multiplied").
    Warnings the call emits are dropped: a test cell must not write to stderr."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn(*args, **kwargs)
    except CheckFailed:
        raise
    except Exception as exc:  # noqa: BLE001 - any error of the student's code is explained the same way
        error = exc
    first = (str(error).strip().splitlines() or [""])[0][:300].rstrip(".")
    _fail(f"{call} raised {type(error).__name__}: {first}.", hint)  # raised outside except: no chained traceback


_USE_ARGUMENTS = ("{name} must work for any model and data the tests give it: use its arguments ({args}), "
                  "not the notebook's variables.")


def _recording_sgd(params, lr: float, events: list):
    """An SGD optimizer that appends "zero_grad" and "step" to ``events`` when called. The class
    is made per call, never stored in this module: torch patches an optimizer class's ``step``
    on first use, and the grading guard watches this module's classes."""
    class RecordingSGD(torch.optim.SGD):
        def zero_grad(self, set_to_none: bool = True):
            events.append("zero_grad")
            super().zero_grad(set_to_none)

        def step(self, closure=None):
            events.append("step")
            return super().step(closure)

    return RecordingSGD(params, lr=lr)


def check_train_step(train_step, model: nn.Module, X: torch.Tensor, y: torch.Tensor, loss_fn,
                     lr: float = 0.1, name: str = "train_step", hint: str | None = None) -> float:
    """Call ``train_step(model, X, y, loss_fn, optimizer)`` once on the caller's fresh model and
    data (never the notebook's), with an SGD optimizer that records its calls, and judge how the
    step was done: the given model run in training mode, ``zero_grad`` (optimizer's or model's)
    not between ``backward`` and ``step``, exactly one ``backward`` and one ``step``, the weights
    moved by exactly one gradient step of ``loss_fn(model(X), y)``, and the loss before the update
    returned as a Python float. ``model`` must be deterministic (no dropout); it is left in
    evaluation mode before the call, so a missing ``model.train()`` shows. ``hint`` is added to
    every message; an error raised by the call gets a default one (use the arguments). Returns
    the loss."""
    call = f"{name}(model, X, y, loss_fn, optimizer)"
    events: list[str] = []
    expected = copy.deepcopy(model).train()
    params = [p for p in model.parameters() if p.requires_grad]
    hooks = [model.register_forward_pre_hook(lambda m, _: events.append("forward" if m.training else "forward (eval)"))]
    hooks += [p.register_hook(lambda g: events.append("backward") if events[-1:] != ["backward"] else None)
              for p in params]

    def model_zero_grad(set_to_none: bool = True):
        events.append("zero_grad")
        nn.Module.zero_grad(model, set_to_none)

    model.eval()
    model.zero_grad = model_zero_grad  # model.zero_grad() is a valid way to clear the gradients
    try:
        returned = check_runs(train_step, model, X, y, loss_fn, _recording_sgd(params, lr, events), call=call,
                              hint=hint or _USE_ARGUMENTS.format(name=name, args="model, X, y, loss_fn, optimizer"))
    finally:
        del model.zero_grad
        for handle in hooks:
            handle.remove()

    ran = [e for e in events if e.startswith("forward")]
    if not ran:
        _fail(f"{call} never called the model it was given" + (
            ": call model(X), not model.forward(X)." if "backward" in events else
            ": use its arguments (model, X, y, loss_fn, optimizer), not the notebook's variables."), hint)
    if "forward (eval)" in ran:
        _fail(f"{call} ran the model in evaluation mode: call model.train() at the start of the step.", hint)
    if "zero_grad" not in events:
        _fail(f"{call} never calls optimizer.zero_grad(): PyTorch adds each backward pass's gradients "
              "to the ones already stored, so every update would also repeat all the previous ones. "
              "Call optimizer.zero_grad() before loss.backward().", hint)
    if "backward" not in events:
        _fail(f"{call} never calls loss.backward(): without gradients optimizer.step() has nothing to "
              "apply.", hint)
    if "step" not in events:
        _fail(f"{call} never calls optimizer.step(): the gradients are computed but the weights never "
              "change. Call optimizer.step() after loss.backward().", hint)
    if events.count("step") > 1 or events.count("backward") > 1:
        _fail(f"{call} called loss.backward() {events.count('backward')} and optimizer.step() "
              f"{events.count('step')} times; one training step is one backward pass and one update.", hint)
    order = [e for e in events if e in ("zero_grad", "backward", "step")]
    if order.index("step") < order.index("backward"):
        _fail(f"{call} calls optimizer.step() before loss.backward(): the update uses the previous "
              "step's gradients (or none), so the model always lags one step behind. Order: "
              "zero_grad, backward, step.", hint)
    if "zero_grad" in order[order.index("backward"):order.index("step")]:
        _fail(f"{call} calls optimizer.zero_grad() between loss.backward() and optimizer.step(): it "
              "erases the gradients just computed, so the step changes nothing. Order: zero_grad, "
              "backward, step.", hint)

    wanted = [p for p in expected.parameters() if p.requires_grad]
    loss = loss_fn(expected(X), y)
    with torch.no_grad():
        for p, g in zip(wanted, torch.autograd.grad(loss, wanted)):
            p -= lr * g
    moved = all(torch.allclose(a, b, rtol=1e-4, atol=1e-6) for a, b in zip(params, wanted))
    if not moved:
        _fail(f"{call} changed the weights differently from one gradient step of "
              "loss_fn(model(X), y): compute the loss from the arguments it was given.", hint)
    if isinstance(returned, torch.Tensor):
        _fail(f"{call} returned {describe(returned)}; return loss.item(), a Python float, so the "
              "history does not keep every step's computation graph alive.", hint)
    if not isinstance(returned, (int, float)) or isinstance(returned, bool):
        _fail(f"{call} returned {describe(returned)}; return the step's loss as a float: loss.item().", hint)
    if not math.isclose(returned, loss.item(), rel_tol=1e-4, abs_tol=1e-6):
        _fail(f"{call} returned {returned:.6g}, but this step's loss (before the update) was "
              f"{loss.item():.6g}: return loss.item() of the loss you called backward() on.", hint)
    return float(returned)


def check_predict(predict, model: nn.Module, X: torch.Tensor, name: str = "predict",
                  hint: str | None = None):
    """Call ``predict(model, X)`` on the caller's fresh model and inputs, with the model left in
    training mode, and check that it ran that model in evaluation mode without tracking
    gradients. Returns what it returned, for the caller to compare with the expected labels."""
    call = f"{name}(model, X)"
    runs: list[tuple[bool, bool]] = []
    hook = model.register_forward_pre_hook(lambda m, _: runs.append((m.training, torch.is_grad_enabled())))
    model.train()
    try:
        out = check_runs(predict, model, X, call=call, hint=hint or _USE_ARGUMENTS.format(name=name, args="model, X"))
    finally:
        hook.remove()
    if not runs:
        _fail(f"{call} never called the model it was given: use its arguments model and X, not the "
              "notebook's variables.", hint)
    if any(training for training, _ in runs):
        _fail(f"{call} ran the model in training mode: call model.eval() before predicting (layers "
              "such as dropout and batch norm behave differently while training).", hint)
    if any(grad for _, grad in runs):
        _fail(f"{call} tracked gradients: run the model inside `with torch.inference_mode():`, since "
              "predicting needs no gradients.", hint)
    return out


def check_choice(answer, choices: str, name: str) -> str:
    """A multiple-choice answer: one of the letters in ``choices`` (any case, spaces ignored).
    Returns it in upper case. Only the format is checked here; whether it is right is not."""
    letter = answer.strip().upper() if isinstance(answer, str) else None
    if letter is None or len(letter) != 1 or letter not in choices.upper():
        shown = ", ".join(repr(c) for c in choices.upper())
        _fail(f"{name} is {answer!r}; answer with one letter: {shown}.")
    return letter


def check_train_epoch(train_epoch, model: nn.Module, X: torch.Tensor, y: torch.Tensor, loss_fn,
                      batch_size: int, lr: float = 0.1, name: str = "train_epoch",
                      hint: str | None = None) -> float:
    """Call ``train_epoch(model, X, y, loss_fn, optimizer, batch_size)`` twice on the caller's
    fresh model and data (rows of ``X`` must be distinct), with an SGD optimizer and a loss that
    record their calls, and judge how the epoch was done: the given model run in training mode
    on rows of the given ``X``; ``loss_fn(logits, y)`` in that order; for every mini-batch one
    ``zero_grad`` (optimizer's or model's) before its ``backward`` and one ``step`` after it;
    ``ceil(len(X) / batch_size)`` batches of ``batch_size`` rows (the last one may be smaller)
    that use every row exactly once, in a new random order each call; and the epoch's mean loss
    per row (each batch's loss weighted by its size) returned as a Python float. The calls run
    under their own random seeds, so the notebook's random stream is left alone. Returns the
    first call's returned loss."""
    call = f"{name}(model, X, y, loss_fn, optimizer, batch_size={batch_size})"
    n = len(X)
    index = {tuple(row): i for i, row in enumerate(X.detach().cpu().tolist())}
    if len(index) != n:
        raise ValueError("check_train_epoch needs an X whose rows are all different.")
    default_hint = _USE_ARGUMENTS.format(name=name, args="model, X, y, loss_fn, optimizer, batch_size")
    params = [p for p in model.parameters() if p.requires_grad]
    n_batches = math.ceil(n / batch_size)

    def one_epoch(seed: int):
        events: list[str] = []
        forwards: list[tuple[bool, bool, list]] = []   # (training, grad enabled, row indices)
        losses: list[tuple[int, float, bool]] = []     # (batch rows, loss value, arguments swapped)

        def pre_hook(module, args):
            x = args[0] if args else None
            rows = ([index.get(tuple(r)) for r in x.detach().cpu().tolist()]
                    if isinstance(x, torch.Tensor) and x.ndim == 2 else [None])
            forwards.append((module.training, torch.is_grad_enabled(), rows))
            events.append("forward")

        class RecordingLoss(nn.Module):
            def forward(self, input, target):  # noqa: A002 - the names torch's losses use
                shapes = [tuple(t.shape) for t in (input, target) if isinstance(t, torch.Tensor)]
                if len(shapes) == 2 and shapes[0] != shapes[1]:
                    _fail(f"{call} called loss_fn with logits of shape {shapes[0]} and labels of shape "
                          f"{shapes[1]}: squeeze the model's (B, 1) output to (B,) with .squeeze(1) so that "
                          "each logit meets its own label.", hint)
                value = loss_fn(input, target)
                swapped = (isinstance(target, torch.Tensor) and target.requires_grad
                           and isinstance(input, torch.Tensor) and not input.requires_grad)
                rows = input.shape[0] if isinstance(input, torch.Tensor) and input.ndim else 1
                losses.append((rows, float(value.detach().reshape(-1)[0]) if value.numel() else math.nan, swapped))
                return value

        def model_zero_grad(set_to_none: bool = True):
            events.append("zero_grad")
            nn.Module.zero_grad(model, set_to_none)

        hooks = [model.register_forward_pre_hook(pre_hook)]
        hooks += [p.register_hook(lambda g: events.append("backward") if events[-1:] != ["backward"] else None)
                  for p in params]
        model.zero_grad(set_to_none=True)
        model.eval()
        model.zero_grad = model_zero_grad
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                returned = check_runs(train_epoch, model, X, y, RecordingLoss(), _recording_sgd(params, lr, events),
                                      batch_size, call=call, hint=hint or default_hint)
        finally:
            del model.zero_grad
            for handle in hooks:
                handle.remove()
        return returned, events, forwards, losses

    returned, events, forwards, losses = one_epoch(1234)
    trained = [f for f in forwards if f[1]]
    if not forwards:
        _fail(f"{call} never called the model it was given: use its arguments (model, X, y, loss_fn, optimizer, "
              "batch_size), not the notebook's variables.", hint)
    if any(None in rows for _, _, rows in forwards):
        _fail(f"{call} ran the model on rows that are not in the X it was given: use its arguments "
              "(index X and y), not the notebook's X_train.", hint)
    if any(not training for training, _, _ in trained):
        _fail(f"{call} ran the model in evaluation mode: call model.train() at the start of the epoch "
              "(evaluating switches the model to eval mode, and it stays there until you switch back).", hint)
    if any(swapped for _, _, swapped in losses):
        _fail(f"{call} calls loss_fn with its arguments swapped, loss_fn(y, logits): the first argument is "
              "the model's output, the second the labels: loss_fn(logits, y_batch).", hint)
    if "zero_grad" not in events:
        _fail(f"{call} never calls optimizer.zero_grad(): PyTorch adds each backward pass's gradients to the "
              "ones already stored, so every batch's update would also repeat all the previous batches'. "
              "Call optimizer.zero_grad() for every batch, before loss.backward().", hint)
    if "backward" not in events:
        _fail(f"{call} never calls loss.backward(): without gradients optimizer.step() has nothing to apply.", hint)
    if "step" not in events:
        _fail(f"{call} never calls optimizer.step(): the gradients are computed but the weights never change.",
              hint)
    steps = events.count("step")
    if steps == 1 and n_batches > 1:
        _fail(f"{call} made one optimizer step on all {n} rows at once (full batch). An epoch of mini-batches "
              f"makes {n_batches} steps here: split the shuffled rows into batches of batch_size rows and make "
              "one step per batch.", hint)
    clean, pending, problem = True, False, None
    for event in events:
        if event == "zero_grad":
            if pending and problem is None:
                problem = "erased"
            clean, pending = True, False
        elif event == "backward":
            if not clean and problem is None:
                problem = "piled"
            clean, pending = False, True
        elif event == "step":
            if not pending and problem is None:
                problem = "early"
            pending = False
    if problem == "piled":
        _fail(f"{call} does not clear the gradients before every batch's loss.backward(): calling "
              "optimizer.zero_grad() once per epoch (or never in the loop) lets the gradients of all earlier "
              "batches pile up in each update. Call it inside the batch loop, before loss.backward().", hint)
    if problem == "erased":
        _fail(f"{call} calls optimizer.zero_grad() between loss.backward() and optimizer.step(): it erases the "
              "gradients just computed, so the step changes nothing. Order per batch: zero_grad, backward, "
              "step.", hint)
    if problem == "early":
        _fail(f"{call} calls optimizer.step() before that batch's loss.backward(): the update uses stale "
              "gradients. Order per batch: zero_grad, backward, step.", hint)
    drawn = [i for _, _, rows in trained for i in rows]
    sizes = [len(rows) for _, _, rows in trained]
    if len(drawn) != n or set(drawn) != set(range(n)):
        missing, repeated = n - len(set(drawn)), len(drawn) - len(set(drawn))
        _fail(f"{call} trained on {len(drawn)} rows for an X of {n} rows ({missing} never used, {repeated} "
              "used again): an epoch uses every row exactly once. Shuffle the row indices with "
              "torch.randperm(len(X)) and slice them in steps of batch_size up to len(X) (the last batch may "
              "be smaller).", hint)
    if steps != n_batches or sizes[:-1] != [batch_size] * (len(sizes) - 1) or sizes[-1] > batch_size:
        _fail(f"{call} used batches of {sizes} rows ({steps} steps); expected batches of batch_size = "
              f"{batch_size} rows (the last one smaller), {n_batches} steps for {n} rows.", hint)
    if isinstance(returned, torch.Tensor):
        _fail(f"{call} returned {describe(returned)}; return a Python float (use loss.item() for each batch).",
              hint)
    if not isinstance(returned, (int, float)) or isinstance(returned, bool):
        _fail(f"{call} returned {describe(returned)}; return the epoch's mean loss as a float.", hint)
    weighted = sum(rows * value for rows, value, _ in losses) / max(sum(rows for rows, _, _ in losses), 1)
    if not math.isclose(returned, weighted, rel_tol=1e-4, abs_tol=1e-6):
        said = f"{call} returned {returned:.6g}, but the mean loss per row over the epoch was {weighted:.6g}"
        if losses and math.isclose(returned, losses[-1][1], rel_tol=1e-4, abs_tol=1e-6):
            _fail(f"{said}: it returned the last batch's loss only. Add up loss.item() * len(batch) over "
                  "all batches and divide by len(X).", hint)
        if losses and math.isclose(returned, sum(v for _, v, _ in losses) / len(losses), rel_tol=1e-4, abs_tol=1e-6):
            _fail(f"{said}: it averaged the batch losses without weights, so the last, smaller batch counts as "
                  "much as a full one. Add up loss.item() * len(batch) and divide by len(X).", hint)
        _fail(f"{said} (each batch's loss.item() times its number of rows, summed, divided by len(X)).", hint)
    if drawn == list(range(n)):
        _fail(f"{call} went through the rows in their stored order: shuffle them at the start of every epoch "
              "(torch.randperm(len(X))), so the batches differ from epoch to epoch.", hint)
    _, _, again, _ = one_epoch(4321)
    if [i for _, grad, rows in again if grad for i in rows] == drawn:
        _fail(f"{call} drew the rows in the same order in two epochs: shuffle inside {name}, at every call "
              "(a permutation made once outside, or a fixed seed, repeats the same batches every epoch).", hint)
    return float(returned)


def check_scheduler_steps(scheduler, steps: int, name: str = "scheduler", hint: str | None = None) -> None:
    """A learning-rate scheduler that is stepped ``steps`` times (e.g. once per batch over the
    whole training) must allow it: OneCycleLR sized in epochs instead of batches fails after a
    few batches. Stepped on a deep copy, so the real scheduler and optimizer are untouched."""
    import copy
    import warnings

    probe = copy.deepcopy(scheduler)  # copies its optimizer with it
    done = 0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "scheduler.step() before optimizer.step()"
            for done in range(1, steps + 1):
                probe.step()
    except Exception as err:  # noqa: BLE001 - whatever the scheduler raises is the finding
        _fail(f"{name} has to be stepped {steps} times during training (once per batch), but step "
              f"{done} failed: {type(err).__name__}: {err}", hint)
