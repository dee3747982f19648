"""shmrpc: fast request/response calls between processes on one machine,
over shared memory (Python binding of libshmrpc, with ctypes).

    import shmrpc
    with shmrpc.Client("calc", timeout=1.0) as client:
        a_plus_b = shmrpc.unpack_i64(client.call(1, shmrpc.pack_i64(2, 3)))[0]

Errors are shmrpc.Error subclasses named after the library's codes
(shmrpc.ETIMEDOUT, shmrpc.ENOSERVER, shmrpc.ESERVERDIED, ...); a handler's
failure is shmrpc.ApplicationError with app_code and app_message.
Timeouts are in seconds; None waits forever. Linux only.
"""
from ._library import (INFINITE, METHOD_LIST, METHOD_PING, METHOD_RESERVED,
                       NOWAIT, lib as _lib)
from . import errors as _errors
from .errors import ApplicationError, Error, codes, error_class
from .client import Client
from .server import (ACCESS_EVERYONE, ACCESS_GROUP, ACCESS_OWNER, Server)
from .payload import (Reader, Writer, pack_i64, pack_str, unpack_i64,
                      unpack_str)

# shmrpc.ETIMEDOUT, shmrpc.ESERVERDIED, ...: one class per library code.
globals().update({name: getattr(_errors, name) for name in _errors.__all__})

__version__ = _lib.shmrpc_version_string().decode()


def name_check(name):
    """True if `name` is a valid service name (1 to 64 characters of
    [A-Za-z0-9._-])."""
    return _lib.shmrpc_name_check(name.encode()) == 0


__all__ = (["Client", "Server", "Reader", "Writer", "pack_i64", "unpack_i64",
            "pack_str", "unpack_str", "name_check", "INFINITE", "NOWAIT",
            "METHOD_PING", "METHOD_LIST", "METHOD_RESERVED", "ACCESS_OWNER",
            "ACCESS_GROUP", "ACCESS_EVERYONE"] + list(_errors.__all__))
