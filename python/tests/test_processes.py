"""Across processes and languages: Python calling the C calculator server,
the C (and C++) calc_client calling a Python server, a Python server killed
in the middle of a call, and one stopped from its Python signal handler."""
import os
import signal
import threading
import time

import pytest

import shmrpc
from conftest import (EXIT_S, bin_path, python_server, read_line, run,
                      shm_left, unique_name)


def test_python_calls_the_c_calculator(helpers):
    name = unique_name("cserver")
    server = helpers([bin_path("calc_server"), "--name", name],
                     ready="serving")
    with shmrpc.Client(name, timeout=10) as client:
        assert client.methods()["add"] == 1
        assert shmrpc.unpack_i64(client.call("add", shmrpc.pack_i64(2, 3))) \
            == (5,)
        assert shmrpc.unpack_i64(client.call(
            "eval", shmrpc.pack_str("2*(3+4)-5/2"))) == (12,)
        with pytest.raises(shmrpc.ApplicationError) as div_zero:
            client.call("div", shmrpc.pack_i64(1, 0))
        assert div_zero.value.app_code == 3
        assert div_zero.value.app_message == "division by zero"
        with pytest.raises(shmrpc.ApplicationError) as overflow:
            client.call("add", shmrpc.pack_i64(2**63 - 1, 1))
        assert overflow.value.app_code == 2
    server.signal(signal.SIGINT)
    assert server.wait() == 0
    assert shm_left(name) == []


@pytest.mark.parametrize("client_program", ["calc_client", "calc_client_cpp"])
def test_c_client_calls_a_python_server(helpers, client_program):
    program = bin_path(client_program)
    name = unique_name("pyserver")
    server = helpers(python_server(name), ready="ready")

    def calc(*args):
        return run([program, "--name", name, "--timeout", "10000"] +
                   list(args))

    added = calc("add", "2", "3")
    assert (added.returncode, added.stdout) == (0, "5\n")
    assert calc("div", "-7", "2").stdout == "-3\n"   # truncates, as C does
    assert calc("mod", "-7", "2").stdout == "-1\n"
    divided = calc("div", "1", "0")
    assert divided.returncode == 5
    assert "division by zero (code 3)" in divided.stderr
    overflow = calc("mul", str(2**62), "4")
    assert overflow.returncode == 5
    assert "integer overflow (code 2)" in overflow.stderr
    # eval is not served by the Python server: no such method.
    assert calc("eval", "1+1").returncode == 6
    server.signal(signal.SIGTERM)
    assert server.wait() == 0
    assert read_line(server.proc) == "stopped"
    assert shm_left(name) == []


def test_python_server_killed_mid_call(helpers):
    name = unique_name("pykill")
    server = helpers(python_server(name), ready="ready")
    killed = threading.Event()

    def kill_when_entered():
        assert read_line(server.proc) == "entered"
        os.kill(server.pid, signal.SIGKILL)
        killed.set()

    killer = threading.Thread(target=kill_when_entered)
    with shmrpc.Client(name, timeout=10) as client:
        killer.start()
        # No timeout: only the server's death can end this call.
        with pytest.raises(shmrpc.ESERVERDIED):
            client.call("block", b"x", timeout=None)
        killer.join(EXIT_S)
        assert killed.is_set()
        # Reported once; the next call finds no server.
        with pytest.raises((shmrpc.ENOSERVER, shmrpc.ESERVERDIED)):
            client.call("add", shmrpc.pack_i64(1, 1), timeout=0)
    assert server.wait() == -signal.SIGKILL
    # A new server takes the dead one's names over at once.
    with shmrpc.Server(name):
        pass
    assert shm_left(name) == []


def test_python_server_stops_from_its_signal_handler(helpers):
    name = unique_name("pysignal")
    server = helpers(python_server(name), ready="ready")
    with shmrpc.Client(name, timeout=10) as client:
        assert client.call("add", shmrpc.pack_i64(1, 2)) == shmrpc.pack_i64(3)
    server.signal(signal.SIGINT)
    assert server.wait() == 0
    assert read_line(server.proc) == "stopped"
    assert shm_left(name) == []


def test_calc_client_command_line(helpers):
    calc_client = bin_path("calc_client")
    shown = run([calc_client, "--help"])
    assert shown.returncode == 0
    assert shown.stdout.startswith("usage: calc_client")
    assert "Exit codes:" in shown.stdout and "6 any other error" in shown.stdout
    assert shown.stderr == ""

    bad_name = run([calc_client, "--name", "no/slash", "add", "1", "2"])
    assert bad_name.returncode == 2
    assert "invalid service name 'no/slash' (1 to 64 characters of " \
           "[A-Za-z0-9._-])" in bad_name.stderr
    assert run([calc_client, "--timeout", "-2", "add", "1", "2"]).returncode \
        == 2

    name = unique_name("calccli")
    server = helpers([bin_path("calc_server"), "--name", name],
                     ready="serving")
    forever = run([calc_client, "--name", name, "--timeout", "-1", "add", "1",
                   "2"])
    assert (forever.returncode, forever.stdout) == (0, "3\n")
    server.signal(signal.SIGTERM)
    assert server.wait() == 0
    assert shm_left(name) == []
    missing = run([calc_client, "--name", unique_name("none"), "--timeout",
                   "0", "add", "1", "2"])
    assert missing.returncode == 3


def test_calc_client_one_timeout_budget(helpers):
    """Finding the server and the call share one --timeout: a client that
    waited 2 s for the server has about 2 s of its 4 s left, too little for
    a 3 s call (with a budget each, the call would have had 4 s)."""
    name = unique_name("budget")
    client = helpers([bin_path("calc_client"), "--name", name, "--timeout",
                      "4000", "sleep", "3000"])
    # The server appears late on purpose: this wait is the scenario (the
    # time the client spends looking), not a synchronisation.
    time.sleep(2.0)
    server = helpers([bin_path("calc_server"), "--name", name],
                     ready="serving")
    assert client.wait() == 4  # timed out
    server.signal(signal.SIGTERM)
    assert server.wait() == 0
    assert shm_left(name) == []
