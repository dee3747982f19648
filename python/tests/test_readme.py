"""README.md's examples, extracted, built as the README builds them (with
the build tree's headers and library in place of pkg-config's) and run:
every client (C, C++, Python, and the C event loop's) against every server
(C, Python)."""
import os
import shlex
import shutil
import signal
import subprocess
import sys

import pytest

import readme_examples
from conftest import ROOT, run, shm_left, unique_name


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    include, lib = os.environ.get("SHMRPC_INCLUDE_DIR"), os.environ.get(
        "SHMRPC_LIB_DIR")
    if not include or not lib:
        pytest.skip("SHMRPC_INCLUDE_DIR and SHMRPC_LIB_DIR are not set "
                    "(run through ctest)")
    out = str(tmp_path_factory.mktemp("readme"))
    found = readme_examples.write(os.path.join(ROOT, "README.md"), out)
    assert set(found) == {"adder.c", "adder.cpp", "adder.py", "adder_loop.c"}
    # pkg-config's flags for an uninstalled build tree, plus the project's
    # warnings as errors: what the README shows must build cleanly.
    flags = "-I%s -L%s -Wl,-rpath,%s -lshmrpc" % (include, lib, lib)
    programs = {}
    for name in ("adder.c", "adder.cpp", "adder_loop.c"):
        command = found[name][1]
        assert command is not None and "$(pkg-config --cflags --libs shmrpc)" \
            in command, "no build command in the comment of " + name
        compiler, rest = command.split(" ", 1)
        if shutil.which(compiler) is None:
            pytest.skip(compiler + " is not installed")
        strict = (" -std=c11" if compiler == "cc" else "") + \
            " -Wall -Wextra -Wpedantic -Werror"
        command = compiler + strict + " " + rest.replace(
            "$(pkg-config --cflags --libs shmrpc)", flags)
        result = subprocess.run(command, shell=True, cwd=out,
                                capture_output=True, text=True)
        assert result.returncode == 0, command + "\n" + result.stderr
        programs[name] = os.path.join(out, shlex.split(command)[-1])
    programs["adder.py"] = [sys.executable, os.path.join(out, "adder.py")]
    return programs


def command(built, program, *args):
    base = built[program]
    return (base if isinstance(base, list) else [base]) + list(args)


@pytest.mark.parametrize("server_program", ["adder.c", "adder.py"])
def test_every_client_against_the_server(built, helpers, server_program):
    name = unique_name("readme")
    server = helpers(command(built, server_program, name, "serve"),
                     ready="serving")
    for client_program in ("adder.c", "adder.cpp", "adder.py"):
        added = run(command(built, client_program, name, "2", "3"))
        assert (added.returncode, added.stdout) == (0, "5\n"), client_program
        overflow = run(command(built, client_program, name,
                               "9223372036854775807", "1"))
        assert overflow.returncode == 1, client_program
        assert "add failed: overflow (code 2)" in overflow.stderr
    # The event loop's client: i + i for every i below 100, eight in flight.
    looped = run(command(built, "adder_loop.c", name, "100"))
    assert (looped.returncode, looped.stdout) == (0, "9900\n"), looped.stderr
    server.signal(signal.SIGTERM)
    assert server.wait() == 0
    assert shm_left(name) == []
    assert run(command(built, "adder.c", name, "1", "1")).returncode == 1
