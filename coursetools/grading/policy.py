"""The code policy: what no lab answer needs, found statically before grading.

Every code cell a student wrote (solution cells, edited unlocked cells, added cells) is
parsed, with IPython magics and ``!shell`` lines turned into the calls they stand for, and
scanned for: imports outside the lab's allow-list (``allowed_imports`` in
``coursetools/benchmarks.toml``) or of modules that reach the interpreter or the system;
``get_ipython``, ``exec``/``eval``/``compile``/``__import__``, ``setattr``/``globals``…;
dunder attributes, names and strings (``__class__.__mro__``, ``__builtins__``, ``"__eq__"``);
classes defining comparison or attribute hooks; assignments to or deletions of attributes of
imported modules and classes (``torch.equal = ...``, ``helpers.checks.x = ...``); process and
signal calls (``os.system``, ``os.fork``, ``os.kill``…); and literal file paths outside the
working directory. A finding does not change a score: the submission is graded and gets the
status ``needs review`` with each finding and where it is, for an instructor to accept or zero.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from coursetools import notebooks

BASE_IMPORTS = ("torch", "torchvision", "torchmetrics", "numpy", "pandas", "sklearn", "matplotlib",
                "seaborn", "tqdm", "helpers", "math", "random", "time", "copy", "pathlib", "collections",
                "itertools", "functools", "dataclasses", "typing", "statistics", "__future__", "warnings",
                "os", "json", "csv", "datetime", "enum", "abc", "operator", "timeit", "pprint", "PIL")
DENIED_MODULES = {"sys", "builtins", "importlib", "ctypes", "gc", "inspect", "IPython", "ipykernel",
                  "jupyter_client", "zmq", "subprocess", "signal", "socket", "multiprocessing", "threading",
                  "_thread", "atexit", "code", "codeop", "runpy", "pty", "resource", "shutil", "tempfile",
                  "marshal", "types", "traceback", "nbformat", "nbgrader", "coursetools",
                  "posix", "asyncio", "concurrent", "urllib", "http", "requests", "base64", "codecs", "site",
                  "sysconfig", "glob", "fnmatch", "mmap", "fcntl", "pwd", "ptrace", "trace", "dis", "ast"}
DENIED_NAMES = {"get_ipython": "IPython shell access", "exec": "exec()", "eval": "eval()",
                "compile": "compile()", "__import__": "__import__()", "globals": "globals()",
                "locals": "locals()", "vars": "vars()", "setattr": "setattr()", "delattr": "delattr()",
                "breakpoint": "breakpoint()", "memoryview": "memoryview()", "help": "help()",
                "input": "input()"}
ALLOWED_DUNDERS = {"__init__", "__name__", "__class__", "__doc__", "__len__", "__getitem__", "__version__",
                   "__main__", "__repr__", "__str__", "__iter__", "__next__", "__future__"}
ALLOWED_CLASS_DUNDERS = {"__init__", "__len__", "__getitem__", "__repr__", "__str__", "__iter__", "__next__"}
RISKY_ATTRIBUTES = {"system", "popen", "fork", "forkpty", "kill", "killpg", "setsid", "setuid", "setgid",
                    "execv", "execve", "execl", "execvp", "execlp", "spawnv", "spawnl", "posix_spawn",
                    "modules", "_getframe", "f_globals", "f_locals", "f_back", "f_builtins", "gi_frame",
                    "tb_frame", "cr_frame", "chdir", "chroot", "putenv", "unsetenv", "symlink", "link",
                    "mkfifo", "mknod", "chmod", "chown", "rmdir", "removedirs", "rmtree", "walk", "scandir",
                    "listdir"}
ALLOWED_MAGICS = {"time", "timeit", "matplotlib"}
ASSIGNABLE_MODULE_ATTRS = ("torch.backends.",)


@dataclass(frozen=True)
class Finding:
    where: str      # "ex2_model, line 3" or "added cell 5, line 1"
    what: str

    def __str__(self) -> str:
        return f"{self.what} ({self.where})"


def to_python(source: str) -> str:
    """A cell's code as Python: magics and ``!shell`` become the calls IPython makes."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        return TransformerManager().transform_cell(source)
    except Exception:  # noqa: BLE001 - IPython missing or confused: scan the raw text
        return source


def _root(node: ast.AST) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def imported_names(trees: list[ast.AST]) -> set[str]:
    """Names bound by imports anywhere in the notebook, and plain aliases of them."""
    names: set[str] = set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names |= {(a.asname or a.name).split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                names |= {a.asname or a.name for a in node.names}
    changed = True
    while changed:  # t = torch; for m in [torch, np]: ...
        changed = False
        for tree in trees:
            for node in ast.walk(tree):
                targets, value = [], None
                if isinstance(node, ast.Assign):
                    targets, value = node.targets, node.value
                elif isinstance(node, (ast.For, ast.comprehension)):
                    targets, value = [node.target], node.iter
                elif isinstance(node, ast.withitem) and node.optional_vars is not None:
                    targets, value = [node.optional_vars], node.context_expr
                if value is None:
                    continue
                values = value.elts if isinstance(value, (ast.List, ast.Tuple, ast.Set)) else [value]
                if any(isinstance(v, (ast.Name, ast.Attribute)) and _root(v) in names for v in values):
                    for target in targets:
                        for t in ast.walk(target):
                            if isinstance(t, ast.Name) and t.id not in names:
                                names.add(t.id)
                                changed = True
    return names


def _outside_workdir(text: str) -> bool:
    if len(text) > 300 or "\n" in text:
        return False
    return (text.startswith(("/", "~")) or bool(re.search(r"(^|[/\\])\.\.([/\\]|$)", text))
            or text.startswith("\\\\"))


class _Scanner(ast.NodeVisitor):
    def __init__(self, where: str, allowed: set[str], module_names: set[str]):
        self.where, self.allowed, self.module_names = where, allowed, module_names
        self.found: list[Finding] = []

    def flag(self, node: ast.AST, what: str) -> None:
        self.found.append(Finding(f"{self.where}, line {getattr(node, 'lineno', '?')}", what))

    def _check_module(self, node, module: str) -> None:
        root = module.split(".")[0]
        if root in DENIED_MODULES:
            self.flag(node, f"imports {module} (reaches the interpreter or the system)")
        elif root not in self.allowed:
            self.flag(node, f"imports {module} (not on this lab's import allow-list)")

    def visit_Import(self, node):
        for alias in node.names:
            self._check_module(node, alias.name)

    def visit_ImportFrom(self, node):
        if node.level:
            self.flag(node, "relative import")
        else:
            self._check_module(node, node.module or "")
        for alias in node.names:
            if alias.name.startswith("__") or alias.name == "*":
                self.flag(node, f"imports {alias.name} from {node.module}")

    def visit_Name(self, node):
        if node.id in DENIED_NAMES:
            self.flag(node, DENIED_NAMES[node.id])
        elif node.id.startswith("__") and node.id.endswith("__") and node.id not in ALLOWED_DUNDERS:
            self.flag(node, f"uses {node.id}")

    def visit_Attribute(self, node):
        if node.attr.startswith("__") and node.attr.endswith("__") and node.attr not in ALLOWED_DUNDERS:
            self.flag(node, f"accesses .{node.attr}")
        elif node.attr in RISKY_ATTRIBUTES and _root(node) in self.module_names:
            self.flag(node, f"calls {_dotted(node) or node.attr} (processes, signals or files outside the lab)")
        self.generic_visit(node)

    def visit_Call(self, node):
        func = node.func
        if (isinstance(func, ast.Attribute) and func.attr in ("run_line_magic", "run_cell_magic")
                and isinstance(func.value, ast.Call) and isinstance(func.value.func, ast.Name)
                and func.value.func.id == "get_ipython" and node.args
                and isinstance(node.args[0], ast.Constant) and node.args[0].value in ALLOWED_MAGICS):
            for arg in node.args[1:]:
                self.visit(arg)
            return
        if isinstance(func, ast.Name) and func.id == "getattr" and len(node.args) > 1:
            name = node.args[1]
            if not isinstance(name, (ast.Constant, ast.Name, ast.Attribute, ast.Subscript)):
                self.flag(node, "getattr() with an attribute name built at run time")
        self.generic_visit(node)

    def visit_Constant(self, node):
        if isinstance(node.value, str):
            if re.fullmatch(r"__\w+__", node.value) and node.value not in ALLOWED_DUNDERS:
                self.flag(node, f"uses the string {node.value!r}")
            elif _outside_workdir(node.value):
                self.flag(node, f"file path outside the working directory: {node.value[:60]!r}")

    def visit_ClassDef(self, node):
        for item in node.body:
            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if item.name.startswith("__") and item.name.endswith("__") and item.name not in ALLOWED_CLASS_DUNDERS:
                    self.flag(item, f"class {node.name} defines {item.name}")
        self.generic_visit(node)

    def _check_target(self, target, verb: str):
        for t in ([target] if not isinstance(target, (ast.Tuple, ast.List)) else target.elts):
            if isinstance(t, ast.Attribute) and _root(t) in self.module_names:
                dotted = _dotted(t)
                if not dotted.startswith(ASSIGNABLE_MODULE_ATTRS):
                    self.flag(t, f"{verb} {dotted or t.attr}, an attribute of an imported module or class")

    def visit_Assign(self, node):
        for target in node.targets:
            self._check_target(target, "assigns")
        self.generic_visit(node)

    def visit_AugAssign(self, node):
        self._check_target(node.target, "assigns")
        self.generic_visit(node)

    def visit_AnnAssign(self, node):
        self._check_target(node.target, "assigns")
        self.generic_visit(node)

    def visit_Delete(self, node):
        for target in node.targets:
            self._check_target(target, "deletes")
        self.generic_visit(node)

    def visit_Global(self, node):
        for name in node.names:
            if name in self.module_names:
                self.flag(node, f"rebinds the imported name {name} globally")


def _parse(source: str) -> ast.AST | None:
    try:
        return ast.parse(to_python(source))
    except SyntaxError:
        return None  # it fails when it runs; not a policy matter


def scan(nb, release, allowed_imports: list[str] | tuple[str, ...] = ()) -> list[Finding]:
    """Findings in the code cells of ``nb`` that the student wrote or changed."""
    given = {c.source.strip() for c in release.cells if c.cell_type == "code"}
    allowed = set(BASE_IMPORTS) | set(allowed_imports)
    cells = [c for c in nb.cells if c.cell_type == "code"]
    trees = [t for t in (_parse(c.source) for c in cells) if t is not None]
    module_names = imported_names(trees)
    found: list[Finding] = []
    for index, cell in enumerate(nb.cells, start=1):
        if cell.cell_type != "code" or cell.source.strip() in given:
            continue
        meta = notebooks.nbgrader_meta(cell)
        if meta.get("grade") and not meta.get("solution"):
            continue  # test cells are restored from the gradebook before running
        tree = _parse(cell.source)
        if tree is None:
            continue
        where = meta.get("grade_id") or f"cell {index}"
        scanner = _Scanner(where, allowed, module_names)
        scanner.visit(tree)
        found += scanner.found
    unique = list(dict.fromkeys(found))
    return unique
