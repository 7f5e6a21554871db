"""The grader's code inside a grading kernel: a second line of defence, run before any student code.

Started by the kernel (``IPKernelApp.exec_files``) from a read-only path of the sandbox, it
snapshots what graded test cells rely on: IPython's event callbacks, input and AST
transformers, display hook, custom exception handler and execution methods; the kernel's
handlers; ``sys.stdout``/``stderr``; builtins; and the attributes of the modules and classes
the tests use (torch, numpy, helpers and their classes). Before every graded test cell the
trusted executor evaluates ``restore()``, which puts all of that back and reports what it
had to repair (the grader flags such a submission for review). ``ack(nonce)`` is appended to
each graded test cell: the trusted side only credits a cell whose acknowledgement arrived.

Code that runs first can defeat anything in its own process, so this only raises the bar:
the sandbox and the static code policy carry the weight. This file imports nothing from the
course's tools (they do not exist inside the sandbox).
"""


def _install():
    import builtins
    import json
    import sys
    import types

    ip = get_ipython()  # noqa: F821 - provided by IPython when exec_files runs
    kernel = getattr(ip, "kernel", None)
    missing = object()

    modules = {}
    for name in ("builtins", "math", "numpy", "numpy.testing", "torch", "torch.nn", "torch.nn.functional",
                 "torch.testing", "torch.optim", "torch.utils.data", "helpers"):
        try:
            __import__(name)
        except Exception:  # noqa: BLE001 - a module a lab does not use may be absent
            continue
    for name, module in list(sys.modules.items()):
        if module is not None and (name in ("builtins", "math", "sys") or name.split(".")[0] in ("helpers",)
                                   or name in ("numpy", "numpy.testing", "torch", "torch.nn",
                                               "torch.nn.functional", "torch.testing", "torch.optim",
                                               "torch.utils.data", "torch.nn.modules.module")):
            modules[name] = module
    module_dicts = {name: dict(vars(m)) for name, m in modules.items() if name != "sys"}

    classes = []
    try:
        import torch

        classes += [torch.Tensor, torch.nn.Module, torch.optim.Optimizer]
    except Exception:  # noqa: BLE001
        pass
    for module in modules.values():
        if getattr(module, "__name__", "").startswith("helpers"):
            classes += [v for v in vars(module).values() if isinstance(v, type)
                        and getattr(v, "__module__", "").startswith("helpers")]
    classes += [c for c in type(ip).__mro__ if c is not object]
    if kernel is not None:
        classes += [c for c in type(kernel).__mro__ if c is not object]
    class_dicts = {c: dict(vars(c)) for c in set(classes)}

    watched_objects = [ip, kernel, getattr(ip, "display_pub", None), getattr(ip, "displayhook", None),
                       getattr(ip, "display_formatter", None), getattr(kernel, "session", None)]
    instance_dicts = [(o, set(vars(o))) for o in watched_objects if o is not None and hasattr(o, "__dict__")]
    methods = ("run_cell", "run_cell_async", "run_ast_nodes", "run_code", "transform_cell", "showtraceback",
               "_showtraceback", "showsyntaxerror", "system", "do_execute", "execute_request", "send",
               "publish", "write_output_prompt", "compute_format_data", "format", "send_response",
               "user_expressions", "_format_user_obj", "ex", "ev")
    method_values = [(o, {m: vars(o).get(m, missing) for m in methods}) for o, _ in instance_dicts]

    events = {name: list(callbacks) for name, callbacks in ip.events.callbacks.items()}
    tm = ip.input_transformer_manager
    transformers = {
        "input_transformers_cleanup": list(ip.input_transformers_cleanup),
        "input_transformers_post": list(ip.input_transformers_post),
        "ast_transformers": list(ip.ast_transformers),
    }
    tm_lists = {name: list(getattr(tm, name)) for name in ("cleanup_transforms", "line_transforms",
                                                             "token_transformers") if hasattr(tm, name)}
    handlers = dict(getattr(kernel, "shell_handlers", {}) or {})
    hooks = {"sys.displayhook": sys.displayhook, "sys.excepthook": sys.excepthook,
             "ip.displayhook": ip.displayhook, "ip.CustomTB": ip.CustomTB,
             "ip.custom_exceptions": ip.custom_exceptions, "sys.stdout": sys.stdout, "sys.stderr": sys.stderr,
             "ip.display_pub": ip.display_pub}
    cwd = __import__("os").getcwd()
    publish = ip.display_pub.publish
    trusted_libraries = {"torch", "numpy", "helpers", "matplotlib", "torchvision", "torchmetrics", "sklearn",
                         "IPython", "ipykernel", "tqdm", "seaborn", "pandas"}
    harmless_added = {"__slotnames__", "__annotations__", "__abstractmethods__", "__parameters__"}

    def library_made(value):
        module = getattr(value, "__module__", None)
        return isinstance(module, str) and module.split(".")[0] in trusted_libraries and module != "__main__"

    volatile_builtins = {"_", "__", "___", "exit", "quit", "get_ipython", "__IPYTHON__", "display"}
    trusted_callback_modules = {"matplotlib_inline", "matplotlib", "ipykernel", "IPython", "ipywidgets"}
    setattr_, getattr_, isinstance_, list_, vars_, dict_ = setattr, getattr, isinstance, list, vars, dict

    def restore():
        """Put the graded machinery back; return a JSON list of what had been changed."""
        changed = []
        for name, module in modules.items():
            if sys.modules.get(name) is not module:
                sys.modules[name] = module
                changed.append(f"sys.modules[{name!r}]")
        for name, saved in module_dicts.items():
            current = vars_(modules[name])
            for key, value in saved.items():
                if name == "builtins" and key in volatile_builtins:
                    continue
                now = current.get(key, missing)
                if now is not value:
                    if library_made(now):  # a library re-binding its own attribute (lazy init)
                        saved[key] = now
                        continue
                    current[key] = value
                    changed.append(f"{name}.{key}")
        for cls, saved in class_dicts.items():
            current = vars_(cls)
            for key, value in saved.items():
                now = current.get(key, missing)
                if now is not value and key not in ("__dict__", "__weakref__"):
                    if library_made(now):
                        saved[key] = now
                        continue
                    try:
                        setattr_(cls, key, value)
                        changed.append(f"{cls.__name__}.{key}")
                    except (TypeError, AttributeError):
                        pass
            for key in set(current) - set(saved):
                # Only added hooks matter (an __eq__ where the class inherited object's);
                # caches such as copyreg's __slotnames__ are harmless.
                if key.startswith("__") and key.endswith("__") and key not in harmless_added:
                    try:
                        delattr(cls, key)
                        changed.append(f"{cls.__name__}.{key} (added)")
                    except (TypeError, AttributeError):
                        pass
        for obj, values in method_values:
            for name, value in values.items():
                now = vars_(obj).get(name, missing)
                if now is not value:
                    if value is missing:
                        del vars_(obj)[name]
                    else:
                        vars_(obj)[name] = value
                    changed.append(f"{type(obj).__name__}.{name}")
        for name, callbacks in events.items():
            now = ip.events.callbacks.get(name, [])
            # Libraries (matplotlib's inline backend) register callbacks of their own later on.
            keep = [cb for cb in now if cb in callbacks or (
                isinstance_(getattr_(cb, "__module__", None), str) and getattr_(cb, "__module__").split(".")[0]
                in trusted_callback_modules)]
            if keep != now or any(cb not in now for cb in callbacks):
                ip.events.callbacks[name] = keep + [cb for cb in callbacks if cb not in keep]
                changed.append(f"event {name}")
        for name, saved in transformers.items():
            if getattr_(ip, name) != saved:
                setattr_(ip, name, list_(saved))
                changed.append(name)
        for name, saved in tm_lists.items():
            if getattr_(tm, name) != saved:
                setattr_(tm, name, list_(saved))
                changed.append(f"input_transformer_manager.{name}")
        if ip.input_transformer_manager is not tm:
            ip.input_transformer_manager = tm
            changed.append("input_transformer_manager")
        if kernel is not None and dict_(kernel.shell_handlers) != handlers:
            kernel.shell_handlers.clear()
            kernel.shell_handlers.update(handlers)
            changed.append("kernel.shell_handlers")
        if sys.displayhook is not hooks["sys.displayhook"]:
            sys.displayhook = hooks["sys.displayhook"]
            changed.append("sys.displayhook")
        if sys.excepthook is not hooks["sys.excepthook"]:
            sys.excepthook = hooks["sys.excepthook"]
            changed.append("sys.excepthook")
        if sys.stdout is not hooks["sys.stdout"] or sys.stderr is not hooks["sys.stderr"]:
            sys.stdout, sys.stderr = hooks["sys.stdout"], hooks["sys.stderr"]
            changed.append("sys.stdout/stderr")
        for attr in ("displayhook", "CustomTB", "custom_exceptions", "display_pub"):
            if getattr_(ip, attr) is not hooks["ip." + attr]:
                setattr_(ip, attr, hooks["ip." + attr])
                changed.append(f"shell.{attr}")
        if __import__("os").getcwd() != cwd:
            __import__("os").chdir(cwd)
            changed.append("working directory")
        return json.dumps(changed)

    def ack(nonce):
        """Tell the trusted side that this graded test cell ran to its end."""
        publish({"application/vnd.course-grader.ack+json": {"nonce": nonce}}, metadata={})

    guard = types.ModuleType("_course_guard")
    guard.restore, guard.ack = restore, ack
    sys.modules["_course_guard"] = guard


_install()
del _install
