"""Shared by the Python tests: where the built programs are, unique service
names, and helper processes whose ready line is awaited with a deadline.

ctest runs these with SHMRPC_LIBRARY (the built shared library),
SHMRPC_BIN_DIR (build/bin) and PYTHONPATH=python set; see
tests/CMakeLists.txt.
"""
import itertools
import os
import select
import signal
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
# Generous: they only stop a hang, they are not what a test measures.
READY_S = 20.0
EXIT_S = 30.0

_counter = itertools.count()


def unique_name(tag):
    """A service name no other run uses: p<pid>-<tag>-<n>."""
    return "p%d-%s-%d" % (os.getpid(), tag, next(_counter))


def shm_left(name):
    """The files of service `name` still in /dev/shm."""
    prefix = "shmrpc." + name
    return [f for f in os.listdir("/dev/shm")
            if f == prefix or f.startswith(prefix + ".")]


def bin_path(program):
    bin_dir = os.environ.get("SHMRPC_BIN_DIR")
    if not bin_dir:
        pytest.skip("SHMRPC_BIN_DIR is not set (run through ctest)")
    path = os.path.join(bin_dir, program)
    if not os.path.exists(path):
        pytest.skip("%s was not built" % program)
    return path


def read_line(proc, timeout=READY_S):
    """The next line of proc's stdout, waiting up to timeout seconds."""
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        raise AssertionError("no line from pid %d in %.0f s" % (proc.pid,
                                                                timeout))
    line = proc.stdout.readline()
    if not line:
        raise AssertionError("pid %d closed its output (exit %s)"
                             % (proc.pid, proc.poll()))
    return line.rstrip("\n")


class Helper:
    """A process started by a test, killed if the test leaves it running."""

    def __init__(self, args, ready=None, env=None):
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True,
                                     env=env)
        if ready is not None:
            line = read_line(self.proc)
            assert ready in line, "expected %r, got %r" % (ready, line)

    @property
    def pid(self):
        return self.proc.pid

    def signal(self, signo):
        self.proc.send_signal(signo)

    def wait(self, timeout=EXIT_S):
        return self.proc.wait(timeout)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(EXIT_S)

    def close(self):
        # Gracefully first: a server stopped by SIGTERM removes its names,
        # a killed one leaves them in /dev/shm.
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(EXIT_S)
            except subprocess.TimeoutExpired:
                pass
        self.kill()
        self.proc.stdout.close()


@pytest.fixture
def helpers():
    """Starts helpers with helpers(args, ready=...); kills them afterwards."""
    started = []

    def start(args, ready=None):
        helper = Helper(args, ready)
        started.append(helper)
        return helper
    yield start
    for helper in started:
        helper.close()


def python_server(name, *extra):
    """The argument list of the Python calculator server (py_server.py)."""
    return [sys.executable, os.path.join(HERE, "py_server.py"), name] + list(
        extra)


def run(args, timeout=EXIT_S):
    """Runs a program to its end; returns the CompletedProcess (text)."""
    return subprocess.run(args, capture_output=True, text=True,
                          timeout=timeout)


SIGTERM = signal.SIGTERM
