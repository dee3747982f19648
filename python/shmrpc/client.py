"""shmrpc.Client: calls into a service."""
import ctypes
import threading

from . import _library
from ._library import Handle, lib, timeout_ms
from .errors import ApplicationError, codes, error_class, raise_for
from .payload import Reader


# A buffer for shmrpc_client_options far larger than the struct will grow:
# shmrpc_client_options_init fills it, and only the leading fields this
# version has are set.
_OPTIONS_BYTES = 4096


class _OptionsHead(ctypes.Structure):
    """The first fields of shmrpc_client_options (shmrpc.h), in order."""
    _fields_ = [("global_namespace", ctypes.c_int), ("spin_us", ctypes.c_int32),
                ("server_user", ctypes.c_char_p)]


class Client(Handle):
    """A connection to service `name`.

    timeout: seconds to wait for the server to appear, and the default
    timeout of call(); None waits forever (a dead server still ends the
    wait), 0 tries once.
    server_user: the user the server must run as (a name or a numeric id);
    by default only this user's and root's services are trusted, and any
    other raises shmrpc.EUNTRUSTED.

    Use it as a context manager, or call close(). Any number of threads
    may call through one client at once, each call on its own lane.
    """

    _release = "shmrpc_client_close"

    def __init__(self, name, timeout=5.0, server_user=None):
        self.name = name
        self.timeout = timeout
        self._handle = ctypes.c_void_p()
        self._buffers = threading.local()
        self._methods = None
        options = user = None
        if server_user is not None:
            options = ctypes.create_string_buffer(_OPTIONS_BYTES)
            lib.shmrpc_client_options_init(options)
            user = str(server_user).encode()  # kept alive until opened
            _OptionsHead.from_buffer(options).server_user = user
        raise_for(lib.shmrpc_client_open(ctypes.byref(self._handle),
                                         name.encode(), options,
                                         timeout_ms(timeout)))

    @property
    def capacity(self):
        """The slot capacity of the service, in bytes."""
        return lib.shmrpc_client_capacity(self._live())

    def _buffer(self, size):
        # An answer fits the slot: one buffer of its capacity per thread,
        # allocated once rather than per call.
        buf = getattr(self._buffers, "buf", None)
        if buf is None or len(buf) < size:
            buf = self._buffers.buf = ctypes.create_string_buffer(max(size, 1))
        return buf

    def call(self, method, data=b"", timeout=...):
        """Calls `method` (an id, or a name the server registered) with the
        request bytes and returns the answer's bytes.

        timeout: seconds (None: forever); by default the client's.
        Raises shmrpc.ApplicationError for a handler's failure (app_code,
        app_message) and another shmrpc.Error for a transport one
        (shmrpc.ETIMEDOUT, shmrpc.ESERVERDIED, ...)."""
        handle = self._live()
        if isinstance(method, str):
            method = self.method_id(method)
        if not isinstance(data, bytes):
            data = bytes(data)
        buf = self._buffer(lib.shmrpc_client_capacity(handle))
        length = ctypes.c_size_t(0)
        rc = lib.shmrpc_call(handle, method, data, len(data), buf, len(buf),
                             ctypes.byref(length),
                             timeout_ms(self.timeout if timeout is ...
                                        else timeout))
        if rc == ApplicationError.code:
            message = ctypes.c_char_p()
            code = lib.shmrpc_client_app_error(handle, ctypes.byref(message))
            raise ApplicationError(
                code, (message.value or b"").decode(errors="replace"))
        raise_for(rc)
        return ctypes.string_at(buf, length.value)

    def methods(self):
        """The methods the server registered, as {name: id} (the built-in
        list method)."""
        answer = Reader(self.call(_library.METHOD_LIST))
        found = {}
        while answer.remaining:
            method_id = answer.u32()
            found[answer.str()] = method_id
        return found

    def method_id(self, name):
        """The id the server registered `name` under (asked once, then
        remembered). Raises shmrpc.ENOMETHOD if it has none."""
        if self._methods is None or name not in self._methods:
            self._methods = self.methods()
        if name not in self._methods:
            code = codes["SHMRPC_ENOMETHOD"]
            raise error_class(code)(
                code, "%s has no method named %r" % (self.name, name))
        return self._methods[name]
