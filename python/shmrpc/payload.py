"""The typed wire format of shmrpc_payload.h, with struct: little-endian
integers of 1 to 8 bytes, f64, and strings and bytes as a u32 length
followed by the bytes. pack_i64/unpack_i64 and pack_str/unpack_str cover the
common bodies; Writer and Reader mix fields."""
import struct

from .errors import error_class, codes

_FIELDS = {"u8": "<B", "u16": "<H", "u32": "<I", "u64": "<Q",
           "i32": "<i", "i64": "<q", "f64": "<d"}


def _protocol_error(message):
    return error_class(codes["SHMRPC_EPROTO"])(codes["SHMRPC_EPROTO"], message)


def pack_i64(*values):
    """The int64s as one body: pack_i64(2, 3) is 16 bytes."""
    return struct.pack("<%dq" % len(values), *values)


def unpack_i64(data, count=None):
    """A body of int64s as a tuple (of `count` of them, if given)."""
    if len(data) % 8 or (count is not None and len(data) != 8 * count):
        raise _protocol_error("expected %s int64 (8 bytes each), got %d bytes"
                              % (count if count is not None else "whole",
                                 len(data)))
    return struct.unpack("<%dq" % (len(data) // 8), data)


def pack_str(text):
    """A string (str as UTF-8, or bytes) as its u32 length and bytes."""
    raw = text.encode() if isinstance(text, str) else bytes(text)
    return struct.pack("<I", len(raw)) + raw


def unpack_str(data):
    """A body that is exactly one string, decoded as UTF-8."""
    reader = Reader(data)
    text = reader.str()
    reader.done()
    return text


class Writer:
    """Appends fields: Writer().i64(2).str("x").bytes() -> the body."""

    def __init__(self):
        self._parts = []

    def __getattr__(self, field):
        fmt = _FIELDS.get(field)
        if fmt is None:
            raise AttributeError(field)

        def put(value):
            self._parts.append(struct.pack(fmt, value))
            return self
        return put

    def str(self, text):
        self._parts.append(pack_str(text))
        return self

    def blob(self, data):
        self._parts.append(pack_str(bytes(data)))
        return self

    def bytes(self):
        return b"".join(self._parts)


class Reader:
    """Takes fields from the front of a body; a field cut short, or bytes
    left over at done(), raise shmrpc.EPROTO."""

    def __init__(self, data):
        self._data = memoryview(bytes(data))
        self._pos = 0

    def __getattr__(self, field):
        fmt = _FIELDS.get(field)
        if fmt is None:
            raise AttributeError(field)

        def get():
            size = struct.calcsize(fmt)
            return struct.unpack(fmt, self._take(size, field))[0]
        return get

    def _take(self, size, what):
        if len(self._data) - self._pos < size:
            raise _protocol_error("%s needs %d bytes, %d left"
                                  % (what, size, len(self._data) - self._pos))
        chunk = self._data[self._pos:self._pos + size]
        self._pos += size
        return chunk

    def blob(self):
        (size,) = struct.unpack("<I", self._take(4, "length"))
        return bytes(self._take(size, "bytes"))

    def str(self):
        return self.blob().decode()

    @property
    def remaining(self):
        return len(self._data) - self._pos

    def done(self, allow_trailing=False):
        if self.remaining and not allow_trailing:
            raise _protocol_error("%d bytes left unread" % self.remaining)
