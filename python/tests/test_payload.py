"""The struct-based helpers for the wire format of shmrpc_payload.h."""
import pytest

import shmrpc


def test_i64_round_trip():
    body = shmrpc.pack_i64(2, -3, 2**63 - 1)
    assert len(body) == 24
    assert body[:8] == b"\x02" + b"\x00" * 7  # little-endian
    assert shmrpc.unpack_i64(body) == (2, -3, 2**63 - 1)
    assert shmrpc.unpack_i64(body, 3) == (2, -3, 2**63 - 1)


def test_i64_wrong_length_is_eproto():
    with pytest.raises(shmrpc.EPROTO):
        shmrpc.unpack_i64(b"\x00" * 9)
    with pytest.raises(shmrpc.EPROTO):
        shmrpc.unpack_i64(shmrpc.pack_i64(1, 2), 1)


def test_str_round_trip():
    body = shmrpc.pack_str("héllo")
    assert body == b"\x06\x00\x00\x00h\xc3\xa9llo"
    assert shmrpc.unpack_str(body) == "héllo"
    assert shmrpc.pack_str(b"\x00raw") == b"\x04\x00\x00\x00\x00raw"
    with pytest.raises(shmrpc.EPROTO):
        shmrpc.unpack_str(body[:-1])
    with pytest.raises(shmrpc.EPROTO):
        shmrpc.unpack_str(body + b"x")


def test_writer_and_reader_mix_fields():
    body = shmrpc.Writer().u8(7).u32(70000).i64(-1).f64(0.5).str("x").bytes()
    reader = shmrpc.Reader(body)
    assert (reader.u8(), reader.u32(), reader.i64(), reader.f64(),
            reader.str()) == (7, 70000, -1, 0.5, "x")
    reader.done()
    reader = shmrpc.Reader(body)
    reader.u8()
    with pytest.raises(shmrpc.EPROTO):
        reader.done()
    reader.done(allow_trailing=True)
