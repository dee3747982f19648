"""The Python benchmark row: 8-byte round trips with Python on both ends,
over shmrpc (a Python handler, and the built-in ping the C library answers
itself) against multiprocessing.Pipe and a Unix socket pair, in one run.

Each transport echoes 8 bytes from a child process; the transports take
turns in rounds, so a drift of the machine's speed hits them alike. It
prints a table (p50, p99, calls/s, and how many times shmrpc's p50 is
faster) and, with --json-file FILE, appends one JSON line per transport in
the shape of shmrpc_bench's (test "python").

    SHMRPC_LIBRARY=build/lib/libshmrpc.so.0 PYTHONPATH=python \\
        python3 bench/python_bench.py [--quick] [--json-file FILE]

scripts/bench.sh runs it after shmrpc_bench.
"""
import argparse
import json
import multiprocessing
import os
import socket
import sys
import time

import shmrpc

SIZE = 8
ECHO = 1
PAYLOAD = bytes(range(SIZE))


def shmrpc_server(name, ready, done):
    with shmrpc.Server(name) as server:
        @server.method(ECHO, "echo")
        def echo(request):
            return request
        ready.send(True)
        # Serve until the parent says so (a poll between run_once slices).
        while not done.poll():
            server.run_once(0.05)


def pipe_server(conn):
    while True:
        data = conn.recv_bytes()
        if not data:
            return
        conn.send_bytes(data)


def socket_server(sock):
    while True:
        data = sock.recv(SIZE)
        if not data:
            return
        sock.sendall(data)


def measure(call, count):
    """Latencies of count calls, in ns."""
    clock = time.perf_counter_ns
    latencies = []
    for _ in range(count):
        start = clock()
        call()
        latencies.append(clock() - start)
    return latencies


def check(answer):
    if answer != PAYLOAD:
        raise SystemExit("python_bench: a wrong answer: %r" % (answer,))


class Transports:
    """Starts the echo children and gives a call per transport."""

    def __init__(self):
        ctx = multiprocessing.get_context("fork")
        self.children = []
        name = "bench-py-%d" % os.getpid()
        ready_parent, ready_child = ctx.Pipe()
        self.done_parent, done_child = ctx.Pipe()
        self._start(ctx, shmrpc_server, (name, ready_child, done_child))
        if not ready_parent.poll(20):
            raise SystemExit("python_bench: the shmrpc server did not start")
        ready_parent.recv()
        self.client = shmrpc.Client(name, timeout=10)

        self.pipe, pipe_child = ctx.Pipe()
        self._start(ctx, pipe_server, (pipe_child,))
        self.sock, sock_child = socket.socketpair(socket.AF_UNIX,
                                                  socket.SOCK_STREAM)
        self._start(ctx, socket_server, (sock_child,))
        sock_child.close()

    def _start(self, ctx, target, args):
        child = ctx.Process(target=target, args=args, daemon=True)
        child.start()
        self.children.append(child)

    def calls(self):
        client, pipe, sock = self.client, self.pipe, self.sock

        def shmrpc_python():
            check(client.call(ECHO, PAYLOAD))

        def shmrpc_ping():
            check(client.call(shmrpc.METHOD_PING, PAYLOAD))

        def pipe_call():
            pipe.send_bytes(PAYLOAD)
            check(pipe.recv_bytes())

        def socket_call():
            sock.sendall(PAYLOAD)
            check(sock.recv(SIZE))
        return [("shmrpc", "Python handler", shmrpc_python),
                ("shmrpc-ping", "built-in ping, answered in C",
                 shmrpc_ping),
                ("multiprocessing.Pipe", "", pipe_call),
                ("socketpair", "AF_UNIX stream", socket_call)]

    def close(self):
        self.client.close()
        self.done_parent.send(True)
        self.pipe.send_bytes(b"")
        self.sock.shutdown(socket.SHUT_WR)
        for child in self.children:
            child.join(20)
            if child.exitcode is None:
                child.kill()


def percentile(sorted_values, percent):
    rank = -(-len(sorted_values) * percent // 100)
    return sorted_values[max(rank, 1) - 1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="a short run (CI): 3 rounds of 2000 calls")
    parser.add_argument("--json-file", help="append JSON lines to this file")
    parser.add_argument("--json", action="store_true",
                        help="print only the JSON lines, on stdout")
    args = parser.parse_args()
    rounds, per_round = (3, 2000) if args.quick else (5, 20000)

    transports = Transports()
    try:
        calls = transports.calls()
        latencies = {name: [] for name, _, _ in calls}
        elapsed = {name: 0 for name, _, _ in calls}
        for _ in range(rounds):
            for name, _, call in calls:
                measure(call, per_round // 10)  # warm up this round
                start = time.perf_counter_ns()
                latencies[name] += measure(call, per_round)
                elapsed[name] += time.perf_counter_ns() - start
    finally:
        transports.close()

    results = []
    for name, note, _ in calls:
        values = sorted(latencies[name])
        results.append({
            "test": "python", "transport": name, "size": SIZE, "clients": 1,
            "calls": len(values), "p50_ns": percentile(values, 50),
            "p99_ns": percentile(values, 99), "max_ns": values[-1],
            "calls_per_s": round(len(values) / (elapsed[name] / 1e9), 1),
            "note": note})
    if args.json:
        for r in results:
            print(json.dumps(r, separators=(",", ":")))
    else:
        print_table(results, rounds, per_round)
    if args.json_file:
        with open(args.json_file, "a", encoding="utf-8") as out:
            for r in results:
                out.write(json.dumps(r, separators=(",", ":")) + "\n")


def print_table(results, rounds, per_round):
    base = results[0]["p50_ns"]
    print("Python, 8-byte round trips, Python on both ends (%d rounds of %d "
          "calls, taking turns; Python %d.%d):"
          % ((rounds, per_round) + sys.version_info[:2]))
    print("| transport | p50 | p99 | calls/s | p50 ÷ shmrpc p50 |")
    print("|---|---:|---:|---:|---:|")
    for r in results:
        label = r["transport"] + (" (%s)" % r["note"] if r["note"] else "")
        print("| %s | %.2f µs | %.2f µs | %.0f | %.2fx |"
              % (label, r["p50_ns"] / 1e3, r["p99_ns"] / 1e3,
                 r["calls_per_s"], r["p50_ns"] / base))


if __name__ == "__main__":
    main()
