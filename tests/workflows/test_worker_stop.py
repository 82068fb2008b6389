"""Ctrl-C ends ``careflow worker`` within its grace period however slow the clean stop is.

The worker's clean stop is Prefect's runner shutting down (cancelling flow runs, waiting for their
subprocesses, flushing its clients); on a busy machine that once took longer than its test would
wait. ``running.stop_within`` bounds it. Here the "clean stop" hangs on purpose and holds a child
process, as a flow-run subprocess would: the process must still end, with its child, and no traceback.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from flow_helpers import ROOT

HANGS_ON_STOP = """
import subprocess, sys, time
from workflows import running
# the child does not hold the test's pipes, so a worker that left it behind fails the test, not hangs it
child = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); time.sleep(600)"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
with running.stop_within(float(sys.argv[1])):
    try:
        # only now, inside the try: a Ctrl-C before the handler is in place would be Python's own, and
        # one landing between the print and the try would escape the "clean stop" below
        print(child.pid, flush=True)
        time.sleep(600)
    except KeyboardInterrupt:
        time.sleep(600)   # a clean stop that never finishes
"""


def _start(grace: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-P", "-c", HANGS_ON_STOP, str(grace)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    return proc


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie (already ended, not yet reaped by init) counts as gone
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _wait_gone(pid: int) -> bool:
    for _ in range(300):
        if _gone(pid):
            return True
        time.sleep(0.1)
    return False


def test_a_hanging_clean_stop_still_ends_the_process_and_its_children() -> None:
    proc = _start(2)
    try:
        child = int(proc.stdout.readline())  # type: ignore[union-attr]
        os.kill(proc.pid, signal.SIGINT)  # Ctrl-C to the worker only, as its own test's killpg would too
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert "careflow: stopping" in err and "did not stop within 2s" in err
    assert "Traceback" not in err, err
    assert _wait_gone(child), "the child process outlived the worker"


def test_a_second_ctrl_c_stops_at_once() -> None:
    proc = _start(600)  # the grace period never runs out here: only the second Ctrl-C can end it
    try:
        child = int(proc.stdout.readline())  # type: ignore[union-attr]
        os.kill(proc.pid, signal.SIGINT)
        assert proc.stderr is not None
        assert proc.stderr.readline().startswith("careflow: stopping")  # the first Ctrl-C was taken
        os.kill(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "did not stop within" not in err, err
    assert _wait_gone(child)
