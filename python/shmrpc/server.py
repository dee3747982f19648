"""shmrpc.Server: publishes a service whose methods are Python functions."""
import ctypes

from ._library import HANDLER, Handle, lib, timeout_ms
from .errors import ApplicationError, Error, codes, raise_for

# How long run() waits in C before it returns to Python, so that a Python
# signal handler (which runs only between bytecodes) gets to run, and stop()
# takes effect, within this many seconds.
POLL_INTERVAL = 0.05

# A buffer for shmrpc_server_options far larger than the struct will grow:
# shmrpc_server_options_init fills it, and only the leading fields this
# version of the struct has are set. See _options().
_OPTIONS_BYTES = 4096


class _OptionsHead(ctypes.Structure):
    """The first fields of shmrpc_server_options (shmrpc.h), in order."""
    _fields_ = [("capacity", ctypes.c_size_t), ("access", ctypes.c_int),
                ("global_namespace", ctypes.c_int),
                ("spin_us", ctypes.c_int32), ("lanes", ctypes.c_uint32),
                ("workers", ctypes.c_uint32)]


ACCESS_OWNER, ACCESS_GROUP, ACCESS_EVERYONE = 0, 1, 2


def _options(capacity, access, lanes):
    if capacity is None and access is None and lanes is None:
        return None  # the library's defaults, no struct at all
    buf = ctypes.create_string_buffer(_OPTIONS_BYTES)
    lib.shmrpc_server_options_init(buf)
    head = _OptionsHead.from_buffer(buf)
    if capacity is not None:
        head.capacity = capacity
    if access is not None:
        head.access = access
    if lanes is not None:
        head.lanes = lanes
    return buf


class Server(Handle):
    """Service `name`, published as soon as it is created.

        server = shmrpc.Server("calc")

        @server.method(1, "add")
        def add(request):
            a, b = shmrpc.unpack_i64(request, 2)
            return shmrpc.pack_i64(a + b)

        server.run()    # until server.stop(), e.g. from a signal handler

    capacity: bytes a request and an answer may each hold (default 64 KiB);
    access: ACCESS_OWNER (default), ACCESS_GROUP or ACCESS_EVERYONE;
    lanes: how many calls the service holds at once, from any callers (1 to
    64, default 8; a caller that finds them all taken queues). run() serves
    them on the calling thread, one handler at a time.
    Use it as a context manager, or call close(): that removes every name.
    As with shmrpc_server_destroy(), never close a server while run() runs
    on another thread: stop() it and join that thread first.
    """

    _release = "shmrpc_server_destroy"

    def __init__(self, name, capacity=None, access=None, lanes=None):
        self.name = name
        self._handle = ctypes.c_void_p()
        self._callbacks = []  # the C library holds pointers to these
        self._pending = None  # a KeyboardInterrupt raised inside a handler
        self._stopped = False
        raise_for(lib.shmrpc_server_create(ctypes.byref(self._handle),
                                           name.encode(),
                                           _options(capacity, access, lanes)))

    def method(self, method_id, name=None):
        """Decorator: registers fn(request: bytes) as method `method_id`
        (below METHOD_RESERVED) under `name` (default: the function's name).

        fn returns the answer (bytes-like, or None for an empty one). What
        it raises becomes the answer too: shmrpc.ApplicationError its code
        and message; a shmrpc.Error that a forwarding handler may pass on
        (ETIMEDOUT, ENOSERVER, ESERVERDIED, ESHUTDOWN, ENOMETHOD, ETOOBIG)
        that error; any other exception application error 1 with its text.
        """
        def register(fn):
            callback = HANDLER(self._wrap(lambda request, reply: fn(request)))
            raise_for(lib.shmrpc_server_register(
                self._live(), method_id, (name or fn.__name__).encode(),
                callback, None))
            self._callbacks.append(callback)
            return fn
        return register

    def fallback(self, fn):
        """Decorator: fn(method_id, request) answers every id no method was
        registered for, the built-in ping and list included."""
        callback = HANDLER(self._wrap(
            lambda request, reply: fn(lib.shmrpc_reply_method(reply), request)))
        raise_for(lib.shmrpc_server_set_fallback(self._live(), callback, None))
        self._callbacks.append(callback)
        return fn

    def _wrap(self, call):
        # No exception may escape into C: ctypes would print it and answer
        # garbage. Everything becomes an answer here.
        def handler(user_data, request, request_len, reply):
            try:
                answer = call(ctypes.string_at(request, request_len), reply)
                if answer is None:
                    return 0
                if not isinstance(answer, bytes):
                    answer = bytes(answer)
                return lib.shmrpc_reply_write(reply, answer, len(answer))
            except ApplicationError as e:
                return lib.shmrpc_reply_error(reply, e.app_code,
                                              e.app_message.encode()[:255])
            except Error as e:
                if (e.code != codes.get("SHMRPC_EINVAL")
                        and lib.shmrpc_reply_fail(reply, e.code) == e.code):
                    return e.code
                return _reply_exception(reply, e)
            except Exception as e:  # the handler's bug, reported to the caller
                return _reply_exception(reply, e)
            except BaseException as e:  # KeyboardInterrupt, SystemExit
                self._pending = e
                lib.shmrpc_server_stop(self._handle)
                return lib.shmrpc_reply_error(reply, 1, b"server interrupted")
        return handler

    def run_once(self, timeout=None):
        """Serves at most one call, waiting up to `timeout` seconds (None:
        forever) for it. True if one was served."""
        rc = lib.shmrpc_server_run_once(self._live(), timeout_ms(timeout))
        self._raise_pending()
        if rc in (codes["SHMRPC_ETIMEDOUT"], codes["SHMRPC_ESHUTDOWN"]):
            return False
        raise_for(rc)
        return True

    def run(self):
        """Serves until stop(). It waits in C for at most POLL_INTERVAL at a
        time, so Python signal handlers run and stop() from one works."""
        handle = self._live()
        slice_ms = timeout_ms(POLL_INTERVAL)
        shutdown = codes["SHMRPC_ESHUTDOWN"]
        timed_out = codes["SHMRPC_ETIMEDOUT"]
        while not self._stopped:
            rc = lib.shmrpc_server_run_once(handle, slice_ms)
            self._raise_pending()
            if rc == shutdown:
                break
            if rc not in (0, timed_out):
                raise_for(rc)

    def stop(self):
        """Makes run() return after the call in progress. Safe from a signal
        handler and from any thread."""
        self._stopped = True
        if self._handle:
            lib.shmrpc_server_stop(self._handle)

    def stats(self):
        """The service's counters as a dict (calls, app_errors, timeouts,
        recoveries, bytes_in, bytes_out, uptime_ms, repairs)."""
        # shmrpc_stats may grow: a large buffer, and the fields every
        # version has, in their order in shmrpc.h.
        names = ("calls", "app_errors", "timeouts", "recoveries", "bytes_in",
                 "bytes_out", "uptime_ms", "repairs")
        buf = (ctypes.c_uint64 * 64)()
        raise_for(lib.shmrpc_server_stats(self._live(), buf))
        return dict(zip(names, buf))

    def _raise_pending(self):
        if self._pending is not None:
            pending, self._pending = self._pending, None
            raise pending


def _reply_exception(reply, e):
    text = ("%s: %s" % (type(e).__name__, e)).encode(errors="replace")
    return lib.shmrpc_reply_error(reply, 1, text[:255])
