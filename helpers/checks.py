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
from contextlib import contextmanager
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


@contextmanager
def _recording_training(model: nn.Module, params, events: list, hooks: Iterable = ()):
    """While active, ``model.zero_grad()`` appends "zero_grad" to ``events`` (a valid way to clear
    the gradients) and the first gradient reaching ``params`` in a backward pass appends
    "backward"; ``model`` starts in evaluation mode, so a missing ``model.train()`` shows. On exit
    the recorders and the caller's ``hooks`` (handles) are removed. With :func:`_recording_sgd`
    this is the spy every training-procedure check uses."""
    def model_zero_grad(set_to_none: bool = True):
        events.append("zero_grad")
        nn.Module.zero_grad(model, set_to_none)

    handles = list(hooks) + [p.register_hook(lambda g: events.append("backward") if events[-1:] != ["backward"] else None)
                             for p in params]
    model.eval()
    model.zero_grad = model_zero_grad
    try:
        yield
    finally:
        del model.zero_grad
        for handle in handles:
            handle.remove()


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
    with _recording_training(model, params, events, hooks):
        returned = check_runs(train_step, model, X, y, loss_fn, _recording_sgd(params, lr, events), call=call,
                              hint=hint or _USE_ARGUMENTS.format(name=name, args="model, X, y, loss_fn, optimizer"))

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

        model.zero_grad(set_to_none=True)
        with _recording_training(model, params, events, [model.register_forward_pre_hook(pre_hook)]), \
                torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            returned = check_runs(train_epoch, model, X, y, RecordingLoss(), _recording_sgd(params, lr, events),
                                  batch_size, call=call, hint=hint or default_hint)
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


# ---------------------------------------------------------------- lab 09: frozen backbones
def _module_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of every parameter and buffer (batch-norm running statistics included)."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def check_feature_extractor(extract_features, model: nn.Module, loader, device, features_fn=None,
                            name: str = "extract_features", hint: str | None = None):
    """Call ``extract_features(model, loader, device)`` on the caller's model (left in training
    mode, so a missing ``model.eval()`` shows) and loader, and judge how the features were
    extracted: every batch-norm layer run in evaluation mode, no parameter or running statistic
    changed, ``(features, labels)`` returned with ``features`` a float32 ``(N, F)`` CPU tensor
    without a graph and not made under ``torch.inference_mode()`` (it could not train a head),
    equal to ``features_fn(model, X)`` in evaluation mode (default ``model.features(X)``), and
    ``labels`` the int64 labels in the loader's order. Returns ``(features, labels)``."""
    call = f"{name}(model, loader, device)"
    features_fn = features_fn or (lambda m, x: m.features(x))
    reference = copy.deepcopy(model).eval()
    with torch.no_grad():
        batches = [(features_fn(reference, X.to(device)).cpu(), y) for X, y in loader]
    expected, expected_labels = torch.cat([f for f, _ in batches]), torch.cat([y for _, y in batches])
    before = _module_state(model)
    runs: list[bool] = []
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    hooks = [m.register_forward_pre_hook(lambda mod, _: runs.append(mod.training)) for m in norms or [model]]
    model.train()
    try:
        returned = check_runs(extract_features, model, loader, device, call=call,
                              hint=hint or _USE_ARGUMENTS.format(name=name, args="model, loader, device"))
    finally:
        for handle in hooks:
            handle.remove()
    if not runs:
        _fail(f"{call} never ran the model it was given: use its arguments (model, loader, device), not the "
              "notebook's variables.", hint)
    if any(runs):
        _fail(f"{call} ran the model in training mode: call model.eval() before extracting. In training mode "
              "batch norm normalizes each batch with that batch's own statistics and updates its running "
              "averages, so the features depend on which images share a batch and the frozen backbone changes.",
              hint)
    after = model.state_dict()
    changed = [k for k, v in before.items() if not torch.equal(v, after[k])]
    if changed:
        _fail(f"{call} changed {changed[0]}: extracting features must leave the backbone exactly as it was.", hint)
    if not isinstance(returned, (tuple, list)) or len(returned) != 2:
        _fail(f"{call} returned {describe(returned)}; return the pair (features, labels).", hint)
    features, labels = returned
    check_type(features, torch.Tensor, f"the features {call} returned", hint)
    if features.is_inference():
        _fail(f"{call} made its features under torch.inference_mode(): such tensors cannot be used to train "
              "the head later (autograd refuses to save them for backward). Use torch.no_grad().", hint)
    if features.requires_grad:
        _fail(f"{call} returned features that carry a computation graph: compute them inside "
              "torch.no_grad() (the backbone is frozen, nothing needs their gradients).", hint)
    check_tensor(features, f"the features {call} returned", shape=tuple(expected.shape), dtype=torch.float32,
                 hint=hint or "one row of model.features(X) per image, all batches concatenated with torch.cat.")
    if features.device.type != "cpu":
        _fail(f"{call} returned features on {features.device}; move each batch's features to the CPU (.cpu()).",
              hint)
    check_type(labels, torch.Tensor, f"the labels {call} returned", hint)
    check_tensor(labels, f"the labels {call} returned", shape=tuple(expected_labels.shape), dtype=torch.int64,
                 hint=hint)
    if not torch.equal(labels.cpu(), expected_labels.cpu()):
        _fail(f"the labels {call} returned are not the loader's labels in the loader's order.", hint)
    if not torch.allclose(features, expected, atol=1e-4, rtol=1e-4):
        _fail(f"the features {call} returned differ from model.features(X) in evaluation mode: use the "
              "backbone's features (everything before fc), batch by batch in the loader's order.", hint)
    return features, labels


def check_partial_finetune_epoch(finetune_epoch, model: nn.Module, loader, loss_fn, device,
                                 frozen: Sequence[str], name: str = "finetune_epoch",
                                 hint: str | None = None) -> float:
    """Call ``finetune_epoch(model, loader, loss_fn, optimizer, device)`` once on the caller's
    partly frozen model (``frozen``: names of its child modules whose parameters do not train)
    with an optimizer that records its calls, and judge the epoch: the model was left in
    evaluation mode, so the trainable children must run in training mode and the frozen ones in
    evaluation mode; one ``zero_grad`` before each batch's ``backward`` and one ``step`` after it;
    the frozen children's parameters and batch-norm statistics unchanged, the trainable
    parameters changed; the mean loss per example (batches weighted by size) returned as a
    float. Returns it."""
    call = f"{name}(model, loader, loss_fn, optimizer, device)"
    default_hint = _USE_ARGUMENTS.format(name=name, args="model, loader, loss_fn, optimizer, device")
    children = dict(model.named_children())
    trainable = [n for n, m in children.items() if any(p.requires_grad for p in m.parameters())]
    params = [p for p in model.parameters() if p.requires_grad]
    frozen_state = {n: _module_state(children[n]) for n in frozen}
    trainable_before = [p.detach().clone() for p in params]
    events: list[str] = []
    modes: list[tuple[str, bool]] = []
    losses: list[tuple[int, float]] = []

    class RecordingLoss(nn.Module):
        def forward(self, input, target):  # noqa: A002 - the names torch's losses use
            value = loss_fn(input, target)
            rows = input.shape[0] if isinstance(input, torch.Tensor) and input.ndim else 1
            losses.append((rows, float(value.detach().reshape(-1)[0]) if value.numel() else math.nan))
            return value

    hooks = []
    for n in list(frozen) + trainable:  # the layers whose mode matters: batch norm (else the block itself)
        norms = [m for m in children[n].modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        hooks += [m.register_forward_pre_hook(lambda m, _, n=n: modes.append((n, m.training)))
                  for m in norms or [children[n]]]
    with _recording_training(model, params, events, hooks), torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        returned = check_runs(finetune_epoch, model, loader, RecordingLoss(), _recording_sgd(params, 0.05, events),
                              device, call=call, hint=hint or default_hint)
    if not modes:
        _fail(f"{call} never ran the model it was given: use its arguments, not the notebook's finetune_model "
              "or ft_optimizer.", hint)
    in_train = sorted({n for n, training in modes if training and n in frozen})
    if in_train:
        _fail(f"{call} ran the frozen {', '.join(in_train)} in training mode: after model.train(), put the "
              "frozen blocks back with .eval() (in training mode their batch-norm running statistics follow "
              "every batch, so the frozen backbone drifts although its weights have requires_grad = False).", hint)
    in_eval = sorted({n for n, training in modes if not training and n in trainable})
    if in_eval:
        _fail(f"{call} ran the parts being trained ({', '.join(in_eval)}) in evaluation mode: call "
              "model.train() at the start of the epoch, then put only the frozen blocks back in evaluation mode.",
              hint)
    n_batches = len(loader)
    if "step" not in events:
        _fail(f"{call} never called optimizer.step() on the optimizer it was given: use its arguments "
              "(loss_fn, optimizer), not the notebook's ft_optimizer.", hint)
    clean, pending, problem = True, False, None
    for event in events:
        if event == "zero_grad":
            problem = problem or ("erased" if pending else None)
            clean, pending = True, False
        elif event == "backward":
            problem = problem or ("piled" if not clean else None)
            clean, pending = False, True
        elif event == "step":
            problem = problem or ("early" if not pending else None)
            pending = False
    if problem == "piled" or "zero_grad" not in events:
        _fail(f"{call} does not call optimizer.zero_grad() before every batch's loss.backward(): the "
              "gradients of earlier batches pile up in each update.", hint)
    if problem in ("erased", "early"):
        _fail(f"{call} calls zero_grad, backward and step in the wrong order: per batch zero_grad, backward, "
              "step.", hint)
    if events.count("step") != n_batches:
        _fail(f"{call} made {events.count('step')} optimizer steps for a loader of {n_batches} batches: one "
              "step per batch.", hint)
    for n in frozen:
        now = children[n].state_dict()
        moved = [k for k, v in frozen_state[n].items() if not torch.equal(v, now[k])]
        if moved:
            _fail(f"{call} changed {n}.{moved[0]} of the frozen {n}: keep frozen blocks in evaluation mode and "
                  "out of the optimizer.", hint)
    if all(torch.equal(a, b.detach()) for a, b in zip(trainable_before, params)):
        _fail(f"{call} did not change the trainable parameters: train with the optimizer it was given.", hint)
    if isinstance(returned, torch.Tensor) or not isinstance(returned, (int, float)) or isinstance(returned, bool):
        _fail(f"{call} returned {describe(returned)}; return the epoch's mean loss per example as a float.", hint)
    weighted = sum(r * v for r, v in losses) / max(sum(r for r, _ in losses), 1)
    if not math.isclose(returned, weighted, rel_tol=1e-4, abs_tol=1e-6):
        _fail(f"{call} returned {returned:.6g}, but the epoch's mean loss per example was {weighted:.6g}: add up "
              "loss.item() * len(y) over the batches and divide by the number of examples.", hint)
    return float(returned)


def check_train_epoch_loader(train_epoch, model: nn.Module, X: torch.Tensor, y: torch.Tensor, loss_fn,
                             batch_size: int, lr: float = 0.1, name: str = "train_epoch",
                             hint: str | None = None) -> float:
    """``check_train_epoch`` for a ``train_epoch(model, loader, loss_fn, optimizer)`` that draws its
    mini-batches from a DataLoader: each call gets a new shuffling ``DataLoader`` over the caller's
    ``X`` and ``y`` (rows distinct) in batches of ``batch_size``, and the same judgement applies
    (training mode, batches drawn from the given loader, every row once in a new order each epoch,
    ``zero_grad``/``backward``/``step`` per batch, the mean loss per row returned as a float). The
    messages name the loader signature. Returns the first call's returned loss."""
    from torch.utils.data import DataLoader, TensorDataset

    def with_tensors(model, X, y, loss_fn, optimizer, batch_size):
        loader = DataLoader(TensorDataset(X, y), batch_size=batch_size, shuffle=True)
        return train_epoch(model, loader, loss_fn, optimizer)

    call = f"{name}(model, loader, loss_fn, optimizer)"
    rewrites = (
        (f"{name}(model, X, y, loss_fn, optimizer, batch_size={batch_size})", call),
        ("(model, X, y, loss_fn, optimizer, batch_size)", "(model, loader, loss_fn, optimizer)"),
        ("(index X and y), not the notebook's X_train", "(loop over the loader it is given), not the notebook's "
                                                       "train_loader or X_train"),
        ("Shuffle the row indices with torch.randperm(len(X)) and slice them in steps of batch_size up to len(X) "
         "(the last batch may be smaller).", "Loop once over the loader it is given: for X_batch, y_batch in loader."),
        ("split the shuffled rows into batches of batch_size rows and make one step per batch",
         "loop over the loader's mini-batches and make one step per batch"),
        ("shuffle them at the start of every epoch (torch.randperm(len(X))), so the batches differ from epoch "
         "to epoch", "draw the batches from the loader it is given (its shuffle=True gives a new order every "
                     "epoch)"),
        ("shuffle inside train_epoch, at every call (a permutation made once outside, or a fixed seed, repeats "
         "the same batches every epoch)", "draw the batches from the loader at every call (a list of batches "
                                          "made once, or a fixed seed, repeats the same batches every epoch)"),
        ("divide by len(X)", "divide by len(loader.dataset)"),
        ("for an X of", "for a loader of"),
    )
    try:
        return check_train_epoch(with_tensors, model, X, y, loss_fn, batch_size, lr=lr, name=name)
    except CheckFailed as failure:
        message = str(failure)
    for old, new in rewrites:
        message = message.replace(old, new)
    _fail(message, hint)


def check_logits_model(model: nn.Module, n_features: int, n_classes: int, name: str = "model",
                       hint: str | None = None) -> torch.Tensor:
    """A multiclass model must return raw logits: call ``model`` on inputs of the check's own
    (small and very large, so squashing shows), find the Linear layer that runs last with a
    forward hook and require the model's output to be that layer's output, unchanged, in
    evaluation mode and in training mode. A softmax (over the classes or over the examples), a
    sigmoid, a ReLU or a dropout after it gets a message naming it; a final ``log_softmax`` over
    the classes is accepted (cross-entropy and argmax give the same results on it). Models
    without an ``nn.Linear`` are judged on their outputs alone. The model's mode and the
    notebook's random stream are left as they were. Returns the evaluation-mode output."""
    call = f"{name}(X)"
    device = model_device(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        probe = torch.cat([torch.randn(48, n_features) * 2, torch.randn(48, n_features) * 200]).to(device)
    last: list[torch.Tensor] = []

    def hook(module, args, output):
        if isinstance(output, torch.Tensor):
            last.append(output.detach().clone())   # clone before an in-place activation changes it

    def run(training: bool) -> torch.Tensor:
        last.clear()
        model.train(training)
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(1)
            out = check_runs(model, probe, call=call, hint=hint or (
                f"{name} takes ({len(probe)}, {n_features}) inputs and returns one logit per class."))
        if not isinstance(out, torch.Tensor):
            _fail(f"{call} returned {describe(out)}; return the logits tensor of shape (N, {n_classes}).", hint)
        return out.detach()

    was_training = model.training
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Linear)]
    try:
        out = run(False)
        last_eval = last[-1] if last else None
        out_train = run(True)
        last_train = last[-1] if last else None
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    if tuple(out.shape) != (len(probe), n_classes):
        _fail(f"{call} for {len(probe)} inputs returned shape {tuple(out.shape)}; expected ({len(probe)}, "
              f"{n_classes}): one logit per class, so the last layer has out_features = {n_classes}.", hint)
    if not out.is_floating_point():
        _fail(f"{call} returned dtype {out.dtype}; logits are float32 numbers.", hint)

    def same(a, b):
        return a is not None and a.shape == b.shape and torch.allclose(a, b, rtol=1e-4, atol=1e-5)

    if last_eval is not None and last_eval.shape == out.shape and not torch.equal(out, last_eval):
        z = last_eval
        if same(torch.log_softmax(z, dim=1), out):
            pass   # log-probabilities: softmax and argmax of them equal those of the logits
        elif same(torch.softmax(z, dim=1), out):
            _fail(f"{name} applies softmax to the output of its last Linear layer (every row sums to 1). "
                  "nn.CrossEntropyLoss applies softmax itself: with a softmax in the model it is applied "
                  "twice, the loss cannot get near 0 and training stalls. Return the last Linear layer's "
                  "output, the raw logits; apply softmax only in predict.", hint)
        elif same(torch.softmax(z, dim=0), out):
            _fail(f"{name} applies softmax over dim=0, the examples: each column sums to 1 and an example's "
                  "result depends on the other examples in the batch. Return the raw logits (softmax, over "
                  "dim=1, belongs in predict, not in the model).", hint)
        elif same(z.clamp(min=0), out):
            _fail(f"{name} applies a ReLU to the output of its last Linear layer: its logits can never be "
                  "negative, so a class can never be scored below 0, and a logit stuck at 0 gets no gradient. "
                  "ReLUs go after the hidden layers only; return the last Linear layer's output as it is.",
                  hint)
        elif same(torch.sigmoid(z), out):
            _fail(f"{name} applies a sigmoid to the output of its last Linear layer: its logits are squeezed "
                  "into (0, 1), so no class can be much more likely than another. Return the last Linear "
                  "layer's output, the raw logits.", hint)
        else:
            _fail(f"{name} changes the output of its last Linear layer before returning it; the logits are "
                  "that output, unchanged (nothing after the last layer).", hint)
    if last_eval is None:
        if torch.allclose(out.sum(dim=1), torch.ones(len(out), device=out.device), atol=1e-4):
            _fail(f"every row of {name}'s output sums to 1: the model applies softmax itself. Return the raw "
                  "logits; nn.CrossEntropyLoss applies softmax internally.", hint)
        if bool((out >= 0).all()):
            _fail(f"{name}'s outputs are never negative, even for inputs of size 200: something (a ReLU, a "
                  "sigmoid, a softmax) squashes the logits at the end. Return raw logits.", hint)
    if last_train is not None and last_train.shape == out_train.shape and not torch.equal(out_train, last_train):
        if same(last_eval, out) or last_eval is None:
            zeroed = (out_train == 0) & (last_train != 0)
            if bool(zeroed.any()):
                _fail(f"{name} applies dropout to its logits (after the last Linear layer): in training mode "
                      "random logits are set to 0 and the others scaled up, so the loss judges a different "
                      "model at every step. Dropout goes between hidden layers, never after the output "
                      "layer.", hint)
            _fail(f"in training mode {name} changes the output of its last Linear layer before returning it; "
                  "the logits are that output, unchanged.", hint)
    return out


# --- lab 06: full-batch training with a validation history -------------------------------------
def _loss_value(loss_fn, out: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float(loss_fn(out, y))


def check_full_batch_fit(fit, model: nn.Module, X_train: torch.Tensor, y_train: torch.Tensor,
                         X_val: torch.Tensor, y_val: torch.Tensor, loss_fn, epochs: int, lr: float = 0.05,
                         name: str = "fit", hint: str | None = None) -> dict:
    """Call ``fit(model, loss_fn, optimizer, X_train, y_train, X_val, y_val, epochs)`` on the
    caller's fresh classifier (deterministic) and data (all rows distinct, training and validation
    rows different), with an SGD optimizer that records its calls, and judge the procedure of
    full-batch training with a validation history: per epoch one training forward pass on all of
    ``X_train`` (rows of ``X_val`` or any other rows never trained on) in training mode, then
    ``zero_grad``, ``backward``, ``step``; after the step, the validation rows run in evaluation
    mode without gradient tracking; the returned dictionary's ``train_loss``/``train_acc`` are the
    loss and accuracy (%) of the logits the step was computed from, ``val_loss``/``val_acc`` those
    of the last validation pass after the step, one float per epoch. Returns the history."""
    call = f"{name}(model, loss_fn, optimizer, X_train, y_train, X_val, y_val, epochs={epochs})"
    hint_args = hint or _USE_ARGUMENTS.format(name=name, args="model, loss_fn, optimizer, X_train, y_train, "
                                                               "X_val, y_val, epochs")
    where = {tuple(r): "train" for r in X_train.detach().cpu().tolist()}
    where.update({tuple(r): "val" for r in X_val.detach().cpu().tolist()})
    if len(where) != len(X_train) + len(X_val):
        raise ValueError("check_full_batch_fit needs distinct rows in X_train and X_val.")
    events: list = []   # "zero_grad", "backward", "step", or (training, grad, rows, output)

    def forward_hook(module, args, output):
        x = args[0] if args else None
        tags = ({where.get(tuple(r), "other") for r in x.detach().cpu().tolist()}
                if isinstance(x, torch.Tensor) and x.ndim == 2 else {"other"})
        rows = tags.pop() if len(tags) == 1 else "mixed"
        full = isinstance(x, torch.Tensor) and len(x) == (len(X_train) if rows == "train" else len(X_val))
        events.append((module.training, torch.is_grad_enabled(), rows if full or rows in ("other", "mixed") else "part",
                       output.detach().clone() if isinstance(output, torch.Tensor) else None))

    params = [p for p in model.parameters() if p.requires_grad]
    with _recording_training(model, params, events, [model.register_forward_hook(forward_hook)]), \
            torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        history = check_runs(fit, model, loss_fn, _recording_sgd(params, lr, events), X_train, y_train,
                             X_val, y_val, epochs, call=call, hint=hint_args)

    forwards = [e for e in events if isinstance(e, tuple)]
    if not forwards:
        _fail(f"{call} never called the model it was given: use its arguments, not the notebook's variables.", hint)
    if any(f[2] in ("other", "mixed") for f in forwards):
        _fail(f"{call} ran the model on rows that are not exactly its X_train or its X_val (other rows, or both "
              "sets together): train on X_train, validate on X_val, and use the arguments, not the notebook's "
              "X_train or X_test.", hint)
    # The forward pass that each backward() differentiates is the last one before it that tracked gradients.
    trained_on, last = [], None
    for e in events:
        if isinstance(e, tuple) and e[1]:
            last = e
        elif e == "backward" and last is not None:
            trained_on.append(last)
    if any(f[2] == "val" for f in trained_on):
        _fail(f"{call} calls backward() on a loss computed from the validation rows: the model then learns the "
              "flowers it is judged on, and the validation numbers stop meaning anything. Compute the loss you "
              "train with from X_train and y_train only.", hint)
    if any(f[2] == "part" for f in trained_on):
        _fail(f"{call} trains on part of X_train: full-batch training computes each step's loss on all the "
              "training rows at once.", hint)
    if any(not f[0] for f in trained_on):
        _fail(f"{call} ran the training pass in evaluation mode: call model.train() at the start of every epoch "
              "(evaluating switches the model to eval mode, and it stays there until you switch back).", hint)
    if "zero_grad" not in events:
        _fail(f"{call} never calls optimizer.zero_grad(): PyTorch adds each backward pass's gradients to the ones "
              "already stored, so every step would also repeat all the earlier ones. Call optimizer.zero_grad() "
              "every epoch, before loss.backward().", hint)
    if "backward" not in events or "step" not in events:
        _fail(f"{call} never calls {'loss.backward()' if 'backward' not in events else 'optimizer.step()'}: "
              "every epoch computes the gradients, then applies them (zero_grad, backward, step).", hint)
    steps = events.count("step")
    if steps != epochs or len(trained_on) != epochs:
        _fail(f"{call} made {steps} optimizer step(s) and {len(trained_on)} backward pass(es) in {epochs} epochs; "
              "full-batch training makes exactly one of each per epoch, on all the training rows.", hint)
    order, start = [e for e in events if isinstance(e, str)], 0
    for k in range(epochs):
        end = order.index("step", start)
        segment, start = order[start:end], end + 1   # the calls before this epoch's step
        if "backward" not in segment:
            _fail(f"{call} calls optimizer.step() before loss.backward() in epoch {k + 1}: the update uses stale "
                  "gradients. Order every epoch: zero_grad, backward, step.", hint)
        b = len(segment) - 1 - segment[::-1].index("backward")
        if "zero_grad" in segment[b + 1:]:
            _fail(f"{call} calls optimizer.zero_grad() between loss.backward() and optimizer.step(): it erases the "
                  "gradients just computed, so the step changes nothing. Order: zero_grad, backward, step.", hint)
        if k > 0 and "zero_grad" not in segment[:b]:
            _fail(f"{call} does not clear the gradients before every loss.backward(): call optimizer.zero_grad() "
                  "inside the epoch loop, before loss.backward(); otherwise every step also repeats the earlier "
                  "epochs' gradients.", hint)
    evaluated = [f for f in forwards if f[2] == "val"]
    if not evaluated:
        on_train = any(not f[1] or not f[0] for f in forwards if f[2] == "train")
        _fail(f"{call} never ran the model on X_val" + (
            " but evaluated the training rows: the validation numbers must come from X_val, rows the model does "
            "not learn from." if on_train else ": after every epoch's step, measure the loss and accuracy on "
            "X_val (model.eval(), torch.inference_mode())."), hint)
    if any(f[0] for f in evaluated):
        _fail(f"{call} ran the validation rows in training mode: call model.eval() before evaluating (layers such "
              "as dropout and batch norm behave differently in training mode), and model.train() again before "
              "the next epoch's step.", hint)
    if any(f[1] for f in evaluated):
        _fail(f"{call} tracked gradients while evaluating: run the validation pass inside "
              "`with torch.inference_mode():`, since measuring needs no gradients.", hint)

    check_type(history, dict, f"what {call} returned",
               hint='return history = {"train_loss": [...], "train_acc": [...], "val_loss": [...], "val_acc": [...]}')
    for key in ("train_loss", "train_acc", "val_loss", "val_acc"):
        if key not in history:
            _fail(f"the history {name} returns has no key {key!r}; it needs train_loss, train_acc, val_loss and "
                  "val_acc.", hint)
        check_history(history[key], f"{name}'s history[{key!r}]", length=epochs,
                      hint="append one float per epoch (loss.item(), not the tensor).")
    # Expected values, epoch by epoch, from what the model computed during the call.
    expected = {"train_loss": [], "train_acc": [], "val_loss": [], "val_acc": []}
    epoch, val_after = -1, {}
    for e in events:
        if e == "step":
            epoch += 1
        elif isinstance(e, tuple) and e[2] == "val" and epoch >= 0:
            val_after[epoch] = e[3]
    for f in trained_on:
        expected["train_loss"].append(_loss_value(loss_fn, f[3], y_train))
        expected["train_acc"].append(100 * (f[3].argmax(dim=1) == y_train).float().mean().item())
    for k in range(epochs):
        if k not in val_after:
            _fail(f"{call} did not evaluate X_val after epoch {k + 1}'s optimizer.step(): measure the validation "
                  "set once per epoch, after the step, so each entry describes the model at the end of its "
                  "epoch.", hint)
        expected["val_loss"].append(_loss_value(loss_fn, val_after[k], y_val))
        expected["val_acc"].append(100 * (val_after[k].argmax(dim=1) == y_val).float().mean().item())
    said = {"train_loss": "the loss of the epoch's training pass (loss.item() of the loss you call backward() on)",
            "train_acc": "the accuracy (%) of the logits that loss was computed from: "
                         "accuracy_fn(y_train, logits.argmax(dim=1))",
            "val_loss": "loss_fn(model(X_val), y_val).item() after the epoch's step",
            "val_acc": "accuracy_fn(y_val, val_logits.argmax(dim=1)) after the epoch's step, a percentage"}
    for key, values in expected.items():
        got = [float(v) for v in history[key]]
        for k, (a, b) in enumerate(zip(got, values)):
            if not math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-4):
                extra = (" It holds fractions: record percentages (0-100), as accuracy_fn returns them."
                         if key.endswith("acc") and max(got) <= 1 < max(values) else "")
                _fail(f"{name}'s history[{key!r}][{k}] is {a:.6g}, but this epoch's value was {b:.6g}: record "
                      f"{said[key]}.{extra}", hint)
    return history
