"""The grading sandbox, tested directly: what code inside it can and cannot see or do."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

from coursetools.grading import sandbox
from conftest import ROOT

PROBE = textwrap.dedent("""
    import json, os, socket
    out = {"uid": os.getuid(), "cwd": os.getcwd(), "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit())}
    out["course_visible"] = os.path.exists(ROOT + "/source") or os.path.exists(ROOT + "/nbgrader_config.py")
    out["helpers_visible"] = os.path.exists(ROOT + "/helpers/checks.py")
    try:
        open(ROOT + "/helpers/evil.py", "w")
        out["helpers_writable"] = True
    except OSError:
        out["helpers_writable"] = False
    try:
        socket.create_connection(("127.0.0.1", 22), timeout=2)
        out["network"] = "connected"
    except OSError as e:
        out["network"] = type(e).__name__
    out["env"] = sorted(os.environ)
    open("here.txt", "w").write("x")
    try:
        with open("big.bin", "wb") as f:
            f.write(b"0" * (64 * 1024 * 1024))
        out["big_file"] = "written"
    except OSError as e:
        out["big_file"] = type(e).__name__
    pid = os.fork()
    if pid == 0:
        os.setsid()
        import time
        time.sleep(600)
        os._exit(0)
    print(json.dumps(out))
""")

needs_sandbox = pytest.mark.skipif(
    not sandbox.probe().ok and not os.environ.get("COURSE_REQUIRE_SANDBOX"), reason=sandbox.probe().how)


@needs_sandbox
def test_sandbox_contains_a_process():
    assert sandbox.probe().ok, sandbox.probe().how
    spec = sandbox.SandboxSpec(ro_binds=sandbox.student_binds(), env={**sandbox.student_env(1), "SECRET": "x"},
                               max_file_bytes=16 * 1024 ** 2)
    os.environ["GRADER_SECRET_FOR_TEST"] = "1"
    code = f"ROOT = {str(ROOT)!r}\n" + PROBE
    proc = subprocess.run(sandbox.command(spec, [sys.executable, "-c", code]), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["uid"] != 0 and out["uid"] != os.getuid()
    assert out["cwd"] == sandbox.WORK
    assert len(out["pids"]) <= 4, f"host processes visible: {out['pids']}"
    assert not out["course_visible"], "the course directory (source/, config) is visible in the sandbox"
    assert out["helpers_visible"] and not out["helpers_writable"]
    assert out["network"] != "connected"
    assert "GRADER_SECRET_FOR_TEST" not in out["env"]
    assert out["big_file"] == "OSError"  # RLIMIT_FSIZE (16 MB) stops it
    # the forked daemon died with the sandbox: no process of that uid is left
    left = subprocess.run(["pgrep", "-u", str(out["uid"])], capture_output=True, text=True).stdout.split()
    assert left == [], f"processes survived the sandbox: {left}"


def test_sandbox_command_binds_only_what_it_is_given(tmp_path):
    (tmp_path / "data").mkdir()
    spec = sandbox.SandboxSpec(ro_binds=[str(tmp_path / "data"), str(tmp_path / "absent")],
                               socket_dir=str(tmp_path), env={"PATH": "/usr/bin"})
    cmd = sandbox.command(spec, ["python", "-c", "1"], uid=123456)
    assert cmd[0] == "bwrap" and "--clearenv" in cmd and "--unshare-net" in cmd and "--unshare-pid" in cmd
    binds = [cmd[i + 1] for i, a in enumerate(cmd) if a in ("--ro-bind", "--bind")]
    assert str(tmp_path / "data") in binds and str(tmp_path) in binds and str(tmp_path / "absent") not in binds
    assert [b for b in binds if b.startswith(str(ROOT))] == [str(sandbox.GUARD_FILE)]
    assert "--setenv" in cmd and cmd[cmd.index("--setenv") + 1] == "PATH"
