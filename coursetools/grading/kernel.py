"""How nbgrader starts a grading kernel: inside the sandbox, over Unix sockets.

nbgrader's Execute preprocessor starts kernels through a jupyter_client kernel manager. This
one wraps the kernel command in the bubblewrap sandbox of :mod:`sandbox` (spec from the file
named by ``$COURSE_SANDBOX_SPEC``) and talks to it over ``ipc`` sockets in a directory both
sides see, because the kernel has no network at all. The kernel also runs the trusted guard
(:mod:`guard`) before any student code. Without a spec it behaves like jupyter_client's own.
"""
from __future__ import annotations

import os
import shutil
import tempfile

from jupyter_client.manager import AsyncKernelManager

from coursetools.grading import sandbox


class SandboxedKernelManager(AsyncKernelManager):
    """An AsyncKernelManager whose kernels run in the grading sandbox."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        path = os.environ.get(sandbox.SPEC_ENV)
        self._spec = sandbox.SandboxSpec.load(path) if path else None
        if self._spec is not None:
            self.transport = "ipc"
            # One socket prefix per kernel, short enough for AF_UNIX paths (108 bytes).
            self._sockets = tempfile.mkdtemp(prefix="k", dir=self._spec.socket_dir)
            os.chmod(self._sockets, 0o777)  # the kernel's fresh uid creates its sockets here
            self.ip = os.path.join(self._sockets, "s")

    def format_kernel_cmd(self, extra_arguments=None):
        cmd = super().format_kernel_cmd(extra_arguments)
        if self._spec is None:
            return cmd + [f"--IPKernelApp.exec_files={sandbox.GUARD_FILE}"]
        # The kernel gets its own copy of the connection file (ipykernel rewrites it); the
        # trusted side keeps its keys in memory and never reads anything back from there.
        connection = os.path.realpath(self.connection_file)
        copy = os.path.join(self._sockets, "connection.json")
        shutil.copyfile(connection, copy)
        os.chmod(copy, 0o666)
        cmd = [copy if arg == connection else arg for arg in cmd]
        inner = sandbox.command(self._spec, cmd + [f"--IPKernelApp.exec_files={sandbox.INSIDE_GUARD}"])
        if not self._spec.cgroup:
            return inner
        # All memory the kernel holds, shared memory and its tmpfs files included, stays within
        # the limit: the rlimit refuses ordinary allocations first, the cgroup the rest.
        procs = sandbox.make_cgroup(f"{self._spec.cgroup}-{os.path.basename(self._sockets)}",
                                    self._spec.memory_bytes, self._spec.max_processes)
        return sandbox.in_cgroups(procs, inner)
