"""Client and Server in one process (the server on a thread): handlers,
answers, errors of every kind, method names, options and clean-up."""
import threading

import pytest

import shmrpc
from conftest import shm_left, unique_name


class Running:
    """A Server whose run() loop runs on a thread while the block lasts."""

    def __init__(self, server):
        self.server = server
        self.thread = threading.Thread(target=server.run)

    def __enter__(self):
        self.thread.start()
        return self.server

    def __exit__(self, *exc):
        self.server.stop()
        self.thread.join(30)
        assert not self.thread.is_alive()
        self.server.close()


def make_server(name, **options):
    server = shmrpc.Server(name, **options)

    @server.method(1, "add")
    def add(request):
        a, b = shmrpc.unpack_i64(request, 2)
        return shmrpc.pack_i64(a + b)

    @server.method(2)
    def fails(request):
        raise shmrpc.ApplicationError(42, "it failed on purpose")

    @server.method(3, "buggy")
    def buggy(request):
        return {}["missing"]

    @server.method(4, "forwarded")
    def forwarded(request):
        raise shmrpc.ESERVERDIED()

    @server.method(5, "nothing")
    def nothing(request):
        return None

    @server.method(6, "echo")
    def echo(request):
        return bytearray(request)

    return server


def test_calls_and_answers():
    name = unique_name("api")
    with Running(make_server(name)), shmrpc.Client(name, timeout=5) as client:
        assert shmrpc.unpack_i64(client.call(1, shmrpc.pack_i64(40, 2))) == (
            42,)
        assert client.call("echo", b"\x00bytes\xff") == b"\x00bytes\xff"
        assert client.call(6, memoryview(b"view")) == b"view"
        assert client.call(5) == b""
        assert client.call(shmrpc.METHOD_PING, b"ping") == b"ping"
        assert client.methods() == {"add": 1, "fails": 2, "buggy": 3,
                                    "forwarded": 4, "nothing": 5, "echo": 6}
        assert client.capacity == 64 * 1024
    assert shm_left(name) == []


def test_errors_reach_the_caller():
    name = unique_name("apierr")
    with Running(make_server(name)), shmrpc.Client(name, timeout=5) as client:
        with pytest.raises(shmrpc.ApplicationError) as failed:
            client.call(2)
        assert (failed.value.app_code, failed.value.app_message) == (
            42, "it failed on purpose")
        assert failed.value.code == shmrpc.codes["SHMRPC_EAPP"]
        assert failed.value.name == "SHMRPC_EAPP"

        with pytest.raises(shmrpc.ApplicationError) as buggy:
            client.call("buggy")
        assert buggy.value.app_code == 1
        assert buggy.value.app_message == "KeyError: 'missing'"

        # A bad request makes the handler's unpack raise EPROTO, which is no
        # transport error of this call: application error 1.
        with pytest.raises(shmrpc.ApplicationError) as short:
            client.call("add", b"short")
        assert short.value.app_code == 1

        # A forwarded transport error arrives as itself.
        with pytest.raises(shmrpc.ESERVERDIED):
            client.call("forwarded")
        with pytest.raises(shmrpc.ENOMETHOD):
            client.call(99)
        with pytest.raises(shmrpc.ENOMETHOD):
            client.call("no-such-name")
        with pytest.raises(shmrpc.ETOOBIG):
            client.call(6, b"x" * (64 * 1024 + 1))


def test_timeout_and_no_server():
    name = unique_name("apitime")
    entered, release = threading.Event(), threading.Event()
    server = shmrpc.Server(name)

    @server.method(1, "slow")
    def slow(request):
        entered.set()
        release.wait(30)
        return request

    with Running(server), shmrpc.Client(name, timeout=5) as client:
        with pytest.raises(shmrpc.ETIMEDOUT) as timed_out:
            client.call(1, b"x", timeout=0.05)
        assert isinstance(timed_out.value, TimeoutError)
        assert entered.wait(30)  # the handler had the call
        release.set()
    with pytest.raises(shmrpc.ENOSERVER):
        shmrpc.Client(name, timeout=0)


def test_fallback_sees_every_unregistered_id():
    name = unique_name("apifallback")
    server = shmrpc.Server(name)

    @server.method(1, "one")
    def one(request):
        return b"1"

    @server.fallback
    def other(method_id, request):
        return shmrpc.Writer().u32(method_id).bytes() + request

    with Running(server), shmrpc.Client(name, timeout=5) as client:
        assert client.call(1) == b"1"
        assert client.call(7, b"x") == b"\x07\x00\x00\x00x"
        assert client.call(shmrpc.METHOD_PING, b"p")[:4] == b"\x00\x00\xff\xff"


def test_options_and_names():
    name = unique_name("apiopt")
    with Running(make_server(name, capacity=4096)):
        with shmrpc.Client(name, timeout=5) as client:
            assert client.capacity == 4096
            with pytest.raises(shmrpc.ETOOBIG):
                client.call(6, b"x" * 4097)
            assert client.call(6, b"abc") == b"abc"
    with pytest.raises(shmrpc.EEXIST):
        with make_server(name):
            shmrpc.Server(name)
    with pytest.raises(shmrpc.EINVAL):
        shmrpc.Server("bad/name")
    with pytest.raises(ValueError):  # EINVAL is a ValueError too
        shmrpc.Client("", timeout=0)
    assert shmrpc.name_check("ok-name_1.2") and not shmrpc.name_check("a b")
    assert shm_left(name) == []


def test_lanes_and_trusted_users():
    """lanes reaches the library (out of range is EINVAL; threads calling at
    once through one client each get their own answers), and server_user
    decides whom a client trusts."""
    import getpass
    name = unique_name("apilanes")
    with pytest.raises(shmrpc.EINVAL):
        shmrpc.Server(name, lanes=65)
    with Running(make_server(name, lanes=3)):
        with shmrpc.Client(name, timeout=5) as client:
            wrong, right = [], []

            def adder(k):
                try:
                    for i in range(200):
                        got = shmrpc.unpack_i64(
                            client.call("add", shmrpc.pack_i64(k, i)))[0]
                        if got != k + i:
                            wrong.append((k, i, got))
                        else:
                            right.append(1)
                except Exception as error:  # a failed call fails the test
                    wrong.append((k, repr(error)))
            threads = [threading.Thread(target=adder, args=(k * 1000,))
                       for k in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
                assert not t.is_alive()
            assert wrong == []
            assert len(right) == 800
        with shmrpc.Client(name, timeout=5,
                           server_user=getpass.getuser()) as client:
            assert client.call(6, b"me") == b"me"
        with pytest.raises(shmrpc.EUNTRUSTED):
            shmrpc.Client(name, timeout=0, server_user="nobody")
    assert shm_left(name) == []


def test_stats_count_calls():
    name = unique_name("apistats")
    with Running(make_server(name)) as server:
        with shmrpc.Client(name, timeout=5) as client:
            client.call(6, b"12345")
            with pytest.raises(shmrpc.ApplicationError):
                client.call(2)
        stats = server.stats()
    assert stats["calls"] == 2
    assert stats["app_errors"] == 1
    assert stats["bytes_in"] == 5


def test_error_classes_mirror_the_library():
    # Every code the library names has its class, and nothing else does.
    lib = shmrpc._lib
    code = -1
    while lib.shmrpc_err_name(code) != b"SHMRPC_UNKNOWN":
        name = lib.shmrpc_err_name(code).decode()
        cls = shmrpc.error_class(code)
        assert shmrpc.codes[name] == code
        assert cls.code == code
        assert issubclass(cls, shmrpc.Error)
        if name != "SHMRPC_EAPP":
            assert getattr(shmrpc, name[len("SHMRPC_"):]) is cls
            assert str(cls()) == lib.shmrpc_strerror(code).decode()
        code -= 1
    assert len(shmrpc.codes) == -1 - code
    assert shmrpc.error_class(-1000) is shmrpc.Error
    assert shmrpc.error_class(shmrpc.codes["SHMRPC_EAPP"]) is (
        shmrpc.ApplicationError)


def test_closed_handles_refuse_calls():
    name = unique_name("apiclosed")
    with Running(make_server(name)):
        client = shmrpc.Client(name, timeout=5)
        client.close()
        client.close()  # twice is fine
        with pytest.raises(ValueError):
            client.call(1)


def test_package_version_is_the_library_version():
    import os
    import re
    pyproject = os.path.join(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))), "pyproject.toml")
    with open(pyproject, encoding="utf-8") as f:
        version = re.search(r'^version = "([^"]+)"', f.read(), re.M).group(1)
    assert version == shmrpc.__version__
