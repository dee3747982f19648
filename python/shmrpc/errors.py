"""Exceptions mirroring the library's error codes.

The codes are read from the loaded library at import time, never listed
here: walking -1, -2, ... while shmrpc_err_name() knows the code gives every
code this library version has, so a code added in C needs no change here.
Each becomes a subclass of Error named after it (SHMRPC_ETIMEDOUT ->
shmrpc.ETIMEDOUT). A code the library does not know raises plain Error.
"""
from ._library import lib

# Gaps in the numbering are tolerated up to this many unknown codes in a row.
_MAX_GAP = 16


def _name(code):
    return lib.shmrpc_err_name(code).decode()


def _message(code):
    return lib.shmrpc_strerror(code).decode()


class Error(Exception):
    """A failed shmrpc call. `code` is the negative SHMRPC_E* code, `name`
    its name ("SHMRPC_ETIMEDOUT"), str() its message."""

    code = None

    def __init__(self, code=None, message=None):
        if code is None:
            code = type(self).code
        if code is None:
            raise TypeError("%s needs a code" % type(self).__name__)
        self.code = code
        self.name = _name(code)
        super().__init__(message if message is not None else _message(code))


class ApplicationError(Error):
    """A handler's failure: `app_code` (positive) and `app_message`.

    Raise it in a shmrpc.Server handler to answer with that error."""

    def __init__(self, app_code=1, app_message=""):
        self.app_code = int(app_code)
        self.app_message = app_message
        text = "application error %d" % self.app_code
        if app_message:
            text += ": " + app_message
        super().__init__(type(self).code, text)

    def __reduce__(self):
        return (type(self), (self.app_code, self.app_message))


# Builtin exceptions a few codes also are, so that generic code catching
# TimeoutError or PermissionError works. Keyed by name: a code missing from
# the library simply gets no extra base.
_ALSO = {
    "SHMRPC_ETIMEDOUT": TimeoutError,
    "SHMRPC_EACCES": PermissionError,
    "SHMRPC_EINVAL": ValueError,
}

codes = {}  # "SHMRPC_ETIMEDOUT" -> -3, for every code the library has
_classes = {}


def _walk():
    code, gap = -1, 0
    while gap < _MAX_GAP:
        name = _name(code)
        if name == "SHMRPC_UNKNOWN":
            gap += 1
        else:
            gap = 0
            codes[name] = code
        code -= 1


_walk()
if "SHMRPC_EAPP" not in codes:
    raise ImportError("shmrpc: the library has no SHMRPC_EAPP code")
ApplicationError.code = codes["SHMRPC_EAPP"]

for _full, _code in codes.items():
    _short = _full[len("SHMRPC_"):] if _full.startswith("SHMRPC_") else _full
    if _code == ApplicationError.code:
        _cls = ApplicationError
    else:
        _bases = (Error,) + ((_ALSO[_full],) if _full in _ALSO else ())
        _cls = type(_short, _bases, {"code": _code, "__doc__": _message(_code),
                                     "__module__": "shmrpc"})
    _classes[_code] = _cls
    globals()[_short] = _cls


def error_class(code):
    """The exception class for a code (Error for one the library does not
    know)."""
    return _classes.get(code, Error)


def raise_for(code):
    """Raises the exception for a non-zero code (never ApplicationError:
    that one needs the handler's code, see Client.call)."""
    if code != 0:
        cls = error_class(code)
        raise (Error(code) if cls is ApplicationError else cls(code))


__all__ = ["Error", "ApplicationError", "codes", "error_class"] + [
    cls.__name__ for cls in _classes.values() if cls is not ApplicationError]
