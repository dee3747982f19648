"""The calculator service (samples/calc/calc.h) served from Python, for the
cross-language tests: py_server.py NAME.

Methods: add, sub, mul, div, mod (two i64 -> i64, with the C server's error
codes), eval is not served, and block (prints "entered", then waits until
the process is killed or stopped). Prints "ready NAME" once serving, stops on
SIGTERM or SIGINT (from the Python signal handler) and prints "stopped".
"""
import signal
import sys
import threading

import shmrpc

CALC_ERR_BAD_REQUEST, CALC_ERR_OVERFLOW, CALC_ERR_DIV_ZERO = 1, 2, 3
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def checked(value):
    if not INT64_MIN <= value <= INT64_MAX:
        raise shmrpc.ApplicationError(CALC_ERR_OVERFLOW, "integer overflow")
    return shmrpc.pack_i64(value)


def operands(request):
    try:
        return shmrpc.unpack_i64(request, 2)
    except shmrpc.EPROTO:
        raise shmrpc.ApplicationError(CALC_ERR_BAD_REQUEST,
                                      "expected two 64-bit integers")


def divide(a, b, remainder):
    if b == 0:
        raise shmrpc.ApplicationError(CALC_ERR_DIV_ZERO, "division by zero")
    # C division truncates toward zero.
    quotient = abs(a) // abs(b) * (1 if (a < 0) == (b < 0) else -1)
    return checked(a - b * quotient if remainder else quotient)


def main():
    name = sys.argv[1]
    release = threading.Event()
    with shmrpc.Server(name) as server:
        ops = {1: ("add", lambda a, b: checked(a + b)),
               2: ("sub", lambda a, b: checked(a - b)),
               3: ("mul", lambda a, b: checked(a * b)),
               4: ("div", lambda a, b: divide(a, b, False)),
               5: ("mod", lambda a, b: divide(a, b, True))}
        for method_id, (op_name, op) in ops.items():
            server.method(method_id, op_name)(
                lambda request, op=op: op(*operands(request)))

        @server.method(100, "block")
        def block(request):
            print("entered", flush=True)
            release.wait()
            return request

        def on_signal(signo, frame):
            server.stop()
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        print("ready", name, flush=True)
        server.run()
    print("stopped", flush=True)


if __name__ == "__main__":
    main()
