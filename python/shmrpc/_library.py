"""Finds and loads libshmrpc with ctypes, and declares the functions used.

Where the library comes from, first match wins:
1. the file the environment variable SHMRPC_LIBRARY names (a build tree:
   SHMRPC_LIBRARY=build/lib/libshmrpc.so.0);
2. the library `cmake --install` put beside this package (its path relative
   to this folder is written into _installed.py at install time);
3. libshmrpc.so.0 through the system's loader (LD_LIBRARY_PATH, ldconfig),
   as after `pip install ./python` next to an installed library.

Only functions are declared here, never the layout of an options or stats
struct: those grow between releases. Where a struct must be passed, the
caller hands the library a buffer far larger than any version needs and
touches only fields that every version has (see server.py).
"""
import ctypes
import os

# The ABI this binding speaks: the library's major version (its SONAME).
ABI_MAJOR = 0

INFINITE = -1
NOWAIT = 0
METHOD_RESERVED = 0xFFFF0000
METHOD_PING = 0xFFFF0000
METHOD_LIST = 0xFFFF0001

HANDLER = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p,
                           ctypes.c_size_t, ctypes.c_void_p)


def _candidates():
    explicit = os.environ.get("SHMRPC_LIBRARY")
    if explicit:
        return [explicit]
    found = []
    try:
        from . import _installed  # written by cmake --install only
        found.append(os.path.normpath(os.path.join(
            os.path.dirname(os.path.abspath(__file__)), _installed.LIBRARY)))
    except ImportError:
        pass
    found.append("libshmrpc.so.%d" % ABI_MAJOR)
    return found


def _load():
    errors = []
    for path in _candidates():
        try:
            return ctypes.CDLL(path)
        except OSError as e:
            errors.append(str(e))
    raise ImportError(
        "shmrpc: cannot load libshmrpc (%s). Install the library "
        "(cmake --install), add its directory to LD_LIBRARY_PATH, or set "
        "SHMRPC_LIBRARY to the file, e.g. build/lib/libshmrpc.so.%d"
        % ("; ".join(errors), ABI_MAJOR))


def _declare(lib):
    c_int, c_int32, c_uint32, c_size_t = (ctypes.c_int, ctypes.c_int32,
                                          ctypes.c_uint32, ctypes.c_size_t)
    vp, cp = ctypes.c_void_p, ctypes.c_char_p
    pvp = ctypes.POINTER(ctypes.c_void_p)
    table = {
        "shmrpc_version": (ctypes.c_uint, []),
        "shmrpc_version_string": (cp, []),
        "shmrpc_strerror": (cp, [c_int]),
        "shmrpc_err_name": (cp, [c_int]),
        "shmrpc_name_check": (c_int, [cp]),
        "shmrpc_server_options_init": (None, [vp]),
        "shmrpc_server_create": (c_int, [pvp, cp, vp]),
        "shmrpc_server_register": (c_int, [vp, c_uint32, cp, HANDLER, vp]),
        "shmrpc_server_set_fallback": (c_int, [vp, HANDLER, vp]),
        "shmrpc_server_run_once": (c_int, [vp, c_int32]),
        "shmrpc_server_stop": (None, [vp]),
        "shmrpc_server_destroy": (None, [vp]),
        "shmrpc_server_stats": (c_int, [vp, vp]),
        "shmrpc_reply_write": (c_int, [vp, vp, c_size_t]),
        "shmrpc_reply_error": (c_int, [vp, c_int32, cp]),
        "shmrpc_reply_fail": (c_int, [vp, c_int]),
        "shmrpc_reply_method": (c_uint32, [vp]),
        "shmrpc_reply_timeout": (c_int32, [vp]),
        "shmrpc_client_options_init": (None, [vp]),
        "shmrpc_client_open": (c_int, [pvp, cp, vp, c_int32]),
        "shmrpc_call": (c_int, [vp, c_uint32, vp, c_size_t, vp, c_size_t,
                                ctypes.POINTER(c_size_t), c_int32]),
        "shmrpc_client_app_error": (c_int32, [vp, ctypes.POINTER(cp)]),
        "shmrpc_client_capacity": (c_size_t, [vp]),
        "shmrpc_client_close": (None, [vp]),
    }
    for name, (restype, argtypes) in table.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes
    return lib


lib = _declare(_load())

if lib.shmrpc_version() >> 16 != ABI_MAJOR:
    raise ImportError("shmrpc: this package speaks ABI %d, the library is %s"
                      % (ABI_MAJOR, lib.shmrpc_version_string().decode()))


def timeout_ms(seconds):
    """Seconds (a number, or None for no limit) as the C API's milliseconds:
    None is SHMRPC_INFINITE, 0 SHMRPC_NOWAIT, anything else rounds up."""
    if seconds is None:
        return INFINITE
    if seconds < 0:
        raise ValueError("timeout must be None or >= 0 seconds, not %r"
                         % (seconds,))
    ms = int(-(-seconds * 1000 // 1))  # ceil without importing math
    return min(ms, 2**31 - 1)


class Handle:
    """Owns one C handle: close() (or leaving a with block, or garbage
    collection) releases it once with the C function `_release` names."""

    _release = None  # a function of lib, set by the subclass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()

    def close(self):
        handle = getattr(self, "_handle", None)
        if handle:
            getattr(lib, self._release)(handle)
            self._handle = ctypes.c_void_p()

    def _live(self):
        if not getattr(self, "_handle", None):
            raise ValueError("shmrpc.%s: closed" % type(self).__name__)
        return self._handle
