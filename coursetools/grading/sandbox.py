"""Where a submission's code runs: a bubblewrap sandbox around each grading kernel.

The kernel (and everything it spawns) gets
- its own PID, mount, network, IPC and UTS namespaces; the PID namespace dies with the kernel,
  so nothing it started survives grading;
- a fresh, unprivileged uid with no capabilities and ``no_new_privs``;
- a file system made of read-only binds of what the lab needs (the system's ``/usr``, the
  Python installation, the ``helpers`` package, the course data and its cache) plus private,
  size-limited tmpfs mounts for its working directory, HOME and /tmp. The course directory,
  ``source/``, ``solutions/``, gradebooks, the ledger, scratch courses and other students do
  not exist in it;
- an environment reduced to an allow-list;
- rlimits on data memory, processes, file size and open files.

The trusted side (nbgrader in the worker) talks to the kernel over Unix sockets in a
directory shared with the sandbox; nothing the kernel writes is read back except those
messages. ``probe()`` says whether the platform allows this (root, or user namespaces for
an unprivileged grader); when it does not, ``course grade`` says so and degrades explicitly.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

SPEC_ENV = "COURSE_SANDBOX_SPEC"     # path of the JSON spec the kernel manager reads
GUARD_FILE = Path(__file__).with_name("guard.py")
INSIDE_GUARD = "/opt/course-grader/guard.py"
INSIDE_MPL = "/opt/course-grader/matplotlib"
HOME, WORK, TMP = "/home/student", "/home/student/work", "/tmp"
UID_RANGE = (200_000, 260_000)       # fresh uids for sandboxed kernels; none has a login

# Variables a kernel may inherit; every other variable of the grader's environment is dropped.
ENV_ALLOW = ("LANG", "LC_ALL", "TZ", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
             "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "NBGRADER_EXECUTION", "JPY_PARENT_PID",
             "COURSE_DATA_DIR", "COURSE_CACHE_DIR", "CUDA_VISIBLE_DEVICES")
ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "fonts", "localtime", "alternatives",
             "nsswitch.conf", "hosts", "passwd", "group", "os-release", "mime.types", "ssl")


@dataclass
class SandboxSpec:
    """Everything the sandboxed kernel launch needs; written by the worker as JSON."""
    ro_binds: list[str] = field(default_factory=list)   # host paths bound read-only, same path inside
    socket_dir: str = ""                                 # Unix sockets shared with the trusted side
    env: dict[str, str] = field(default_factory=dict)
    memory_bytes: int = 6 * 1024 ** 3
    max_processes: int = 512
    max_file_bytes: int = 256 * 1024 ** 2
    work_bytes: int = 512 * 1024 ** 2
    tmp_bytes: int = 512 * 1024 ** 2
    mpl_cache: str = ""                                  # a matplotlib font cache to seed HOME with
    cgroup: str = ""                                     # cgroup name prefix (memory incl. shm and tmpfs, pids)

    def save(self, path: Path) -> Path:
        path.write_text(json.dumps(asdict(self), indent=1))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "SandboxSpec":
        return cls(**json.loads(Path(path).read_text()))


CGROUP_V1 = {"memory": "/sys/fs/cgroup/memory", "pids": "/sys/fs/cgroup/pids"}
CGROUP_PARENT = "course-grading"


def cgroups_available() -> bool:
    """cgroup v1 memory and pids controllers writable (root on this kind of machine)."""
    return os.geteuid() == 0 and all(os.access(p, os.W_OK) for p in CGROUP_V1.values())


def make_cgroup(name: str, memory_bytes: int, max_processes: int) -> list[str]:
    """A memory and a pids cgroup for one kernel; returns the ``cgroup.procs`` files to join.
    The memory limit also counts shared memory and tmpfs pages, which rlimits do not."""
    procs = []
    try:
        for controller, root in CGROUP_V1.items():
            folder = Path(root) / CGROUP_PARENT / name
            folder.mkdir(parents=True, exist_ok=True)
            if controller == "memory":
                (folder / "memory.limit_in_bytes").write_text(str(memory_bytes))
            else:
                (folder / "pids.max").write_text(str(max_processes))
            procs.append(str(folder / "cgroup.procs"))
    except OSError:
        return []
    return procs


def remove_cgroups(prefix: str) -> None:
    """Remove the (empty, once their kernels ended) cgroups whose names start with ``prefix``."""
    for root in CGROUP_V1.values():
        for folder in sorted(Path(root, CGROUP_PARENT).glob(prefix + "*"), reverse=True):
            try:
                folder.rmdir()
            except OSError:
                pass


def in_cgroups(procs: list[str], cmd: list[str]) -> list[str]:
    """``cmd`` started from a shell that first moves itself into the given cgroups."""
    if not procs:
        return cmd
    joins = "; ".join(f"echo $$ > {p} 2>/dev/null" for p in procs)
    return ["/bin/sh", "-c", f'{joins}; exec "$@"', "cgroup-join", *cmd]


@dataclass
class Availability:
    ok: bool
    how: str        # a phrase for the header line: what contains the kernels


def _python_roots() -> list[str]:
    """The Python installation the kernel runs (virtualenv and its base interpreter)."""
    roots = {os.path.realpath(sys.prefix), os.path.realpath(sys.base_prefix),
             os.path.realpath(os.path.dirname(os.path.realpath(sys.executable)) + "/..")}
    return sorted(roots)


def package_dir(name: str) -> str | None:
    import importlib.util

    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return os.path.realpath(list(spec.submodule_search_locations)[0])


def student_binds(extra: list[str] | None = None) -> list[str]:
    """Read-only paths a lab needs: Python, the ``helpers`` package, the course data and cache."""
    from helpers.data import course_cache_dir, course_data_dir

    paths = _python_roots()
    helpers = package_dir("helpers")
    if helpers:
        paths.append(helpers)
    for folder in (course_data_dir(), course_cache_dir()):
        if folder.is_dir():
            paths.append(os.path.realpath(folder))
    return sorted(set(paths + list(extra or [])))


def student_env(threads: int) -> dict[str, str]:
    """The allow-listed environment of a sandboxed kernel."""
    from helpers.data import course_cache_dir, course_data_dir

    env = {k: os.environ[k] for k in ENV_ALLOW if k in os.environ}
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    env["COURSE_DATA_DIR"] = os.path.realpath(course_data_dir())
    env["COURSE_CACHE_DIR"] = os.path.realpath(course_cache_dir())
    bin_dir = os.path.dirname(sys.executable)
    helpers = package_dir("helpers")
    if helpers:  # the kernel imports the same helpers as the grader (also from a copied checkout)
        env["PYTHONPATH"] = os.path.dirname(helpers)
    env |= {"PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin", "HOME": HOME, "USER": "student",
            "IPYTHONDIR": f"{HOME}/.ipython", "MPLCONFIGDIR": f"{HOME}/.config/matplotlib",
            "XDG_CACHE_HOME": f"{HOME}/.cache", "XDG_CONFIG_HOME": f"{HOME}/.config", "TMPDIR": TMP,
            "PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1", "LANG": env.get("LANG", "C.UTF-8")}
    return env


def _dirs_for(path: str) -> list[str]:
    """``--dir`` arguments (mode 0755) for every ancestor of ``path`` (bwrap makes them 0700)."""
    parts = Path(path).parts[1:-1]
    args, current = [], ""
    for part in parts:
        current += "/" + part
        args += ["--perms", "0755", "--dir", current]
    return args


def command(spec: SandboxSpec, inner: list[str], uid: int | None = None) -> list[str]:
    """The bubblewrap command that runs ``inner`` inside the sandbox described by ``spec``."""
    uid = uid if uid is not None else UID_RANGE[0] + secrets.randbelow(UID_RANGE[1] - UID_RANGE[0])
    root = os.geteuid() == 0
    args = ["bwrap", "--die-with-parent", "--unshare-pid", "--unshare-net", "--unshare-ipc",
            "--unshare-uts", "--unshare-cgroup-try", "--hostname", "grading-sandbox", "--clearenv"]
    if not root:
        args += ["--unshare-user", "--uid", str(uid), "--gid", str(uid)]
    # Private tmpfs mounts first: binds below may lie under /tmp (the trusted side's sockets).
    args += ["--proc", "/proc", "--dev", "/dev",
             "--size", str(64 * 1024 ** 2), "--perms", "1777", "--tmpfs", "/dev/shm",
             "--size", str(spec.tmp_bytes), "--perms", "1777", "--tmpfs", TMP,
             "--perms", "0755", "--dir", "/home",
             "--size", str(spec.work_bytes), "--perms", "0700", "--tmpfs", HOME]
    args += ["--ro-bind", "/usr", "/usr"]
    for link in ("bin", "lib", "lib64", "sbin"):
        target = Path("/" + link)
        if target.is_symlink():
            args += ["--symlink", os.readlink(target), "/" + link]
        elif target.is_dir():
            args += ["--ro-bind", str(target), "/" + link]
    for name in ETC_FILES:
        if os.path.exists("/etc/" + name):
            args += ["--ro-bind", "/etc/" + name, "/etc/" + name]
    for path in spec.ro_binds:
        if os.path.exists(path):
            args += _dirs_for(path) + ["--ro-bind", path, path]
    if spec.socket_dir:
        args += _dirs_for(spec.socket_dir) + ["--bind", spec.socket_dir, spec.socket_dir]
    args += _dirs_for(INSIDE_GUARD) + ["--ro-bind", str(GUARD_FILE), INSIDE_GUARD]
    if spec.mpl_cache and os.path.isdir(spec.mpl_cache):
        args += ["--ro-bind", spec.mpl_cache, INSIDE_MPL]
    args += ["--chdir", "/"]
    for key, value in sorted(spec.env.items()):
        args += ["--setenv", key, value]
    # Inside: as root (no user namespace), give HOME to the fresh uid, seed the matplotlib font
    # cache, then drop to that uid for good (no capabilities, no_new_privs) under rlimits.
    setup = (f'mkdir -p {WORK} {HOME}/.config/matplotlib {HOME}/.cache {HOME}/.ipython && '
             f'cp {INSIDE_MPL}/*.json {HOME}/.config/matplotlib/ 2>/dev/null; ')
    limits = ["prlimit", f"--data={spec.memory_bytes}", f"--nproc={spec.max_processes}",
              f"--fsize={spec.max_file_bytes}", "--nofile=1024", "--core=0", "--"]
    if root:
        setup += f'chown -R {uid}:{uid} {HOME} && cd {WORK} && exec "$@"'
        drop = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--no-new-privs",
                "--inh-caps=-all", "--bounding-set=-all", "--"]
        return args + ["--", "/bin/sh", "-c", setup, "sandbox"] + drop + limits + inner
    setup += f'cd {WORK} && exec "$@"'
    return args + ["--", "/bin/sh", "-c", setup, "sandbox"] + limits + inner


_PROBED: dict[bool, Availability] = {}


def probe() -> Availability:
    """Can this machine run the sandbox? Runs a trivial command inside it once per process."""
    if True in _PROBED:
        return _PROBED[True]
    if not shutil.which("bwrap"):
        found = Availability(False, "no sandbox: bubblewrap (bwrap) is not installed")
    elif not (shutil.which("prlimit") and (os.geteuid() != 0 or shutil.which("setpriv"))):
        found = Availability(False, "no sandbox: util-linux prlimit/setpriv missing")
    else:
        spec = SandboxSpec(ro_binds=_python_roots(), env={"PATH": "/usr/bin:/bin"})
        probe_cmd = command(spec, [sys.executable, "-c", "import os; print(os.getuid())"])
        try:
            proc = subprocess.run(probe_cmd, capture_output=True, text=True, timeout=60)
            ok = proc.returncode == 0 and proc.stdout.strip().isdigit() and int(proc.stdout) != 0
            detail = (proc.stderr.strip().splitlines() or ["no output"])[-1][:120]
        except (OSError, subprocess.TimeoutExpired) as exc:
            ok, detail = False, str(exc)[:120]
        who = "a fresh uid" if os.geteuid() == 0 else "a user namespace"
        found = (Availability(True, f"sandboxed (bubblewrap: {who}, own PID/mount/network namespaces, "
                                    "private tmpfs, rlimits)") if ok else
                 Availability(False, f"no sandbox: bubblewrap failed here ({detail})"))
    _PROBED[True] = found
    return found
