#!/usr/bin/python3
# redis_get.py - a Python redis client as applications write one, for
# perf/real-clients.sh: one connection, GET of one key in a closed loop,
# with the standard library only.
#
#   redis_get.py block|asyncio PORT SECONDS [KEY [VALUE]]
#
#   block    a plain socket: blocking (no timeout), sendall() and recv()
#   asyncio  asyncio streams: a non-blocking socket under the event loop
#
# Every reply is checked against the bulk string VALUE (default "xxx", what
# real-clients.sh SETs); a wrong or short reply, or a closed connection, is
# an error (exit 1). The first half second is warm-up; then it prints
# {"rps": R, "p50_us": P50, "p99_us": P99} of the rest.
import asyncio
import json
import socket
import sys
import time

WARMUP_NS = 500_000_000


def request(key):
    k = key.encode()
    return b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(k), k)


class Recorder:
    """The closed loop's clock: the run's end, the warm-up, each latency."""

    def __init__(self, secs):
        self.now = time.monotonic_ns()
        self.begin = self.now + WARMUP_NS
        self.end = self.now + secs * 1_000_000_000
        self.lat = []

    def more(self):
        return self.now < self.end

    def done(self, t0):
        self.now = time.monotonic_ns()
        if t0 >= self.begin:
            self.lat.append(self.now - t0)

    def report(self):
        if not self.lat:
            sys.exit("redis_get.py: no request completed after the warm-up")
        lat = sorted(self.lat)
        n = len(lat)

        def pct(p):
            return lat[min(n - 1, int(n * p))] / 1000

        print(json.dumps({"rps": round(n * 1e9 / (self.now - self.begin), 1),
                          "p50_us": round(pct(0.50), 1),
                          "p99_us": round(pct(0.99), 1)}))


def complete(got, chunk, want):
    """@got with @chunk, and whether the reply is whole; exits on EOF or a
    reply that is not @want."""
    if not chunk:
        sys.exit("redis_get.py: the server closed the connection")
    got += chunk
    if not want.startswith(got):  # a nil, an error, or more than asked
        sys.exit("redis_get.py: unexpected reply %r" % got[:80])
    return got, len(got) >= len(want)


def run_block(port, secs, req, want):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    rec = Recorder(secs)
    while rec.more():
        t0 = rec.now
        s.sendall(req)
        got, whole = b"", False
        while not whole:
            got, whole = complete(got, s.recv(65536), want)
        rec.done(t0)
    s.close()
    rec.report()


async def run_asyncio(port, secs, req, want):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    rec = Recorder(secs)
    while rec.more():
        t0 = rec.now
        writer.write(req)
        got, whole = b"", False
        while not whole:
            got, whole = complete(got, await reader.read(65536), want)
        rec.done(t0)
    writer.close()
    await writer.wait_closed()
    rec.report()


def main():
    if len(sys.argv) < 4 or sys.argv[1] not in ("block", "asyncio"):
        sys.exit("usage: redis_get.py block|asyncio PORT SECONDS [KEY [VALUE]]")
    port, secs = int(sys.argv[2]), int(sys.argv[3])
    key = sys.argv[4] if len(sys.argv) > 4 else "key:__rand_int__"
    value = (sys.argv[5] if len(sys.argv) > 5 else "xxx").encode()
    want = b"$%d\r\n%s\r\n" % (len(value), value)
    if secs < 1:
        sys.exit("redis_get.py: SECONDS must be at least 1")
    if sys.argv[1] == "block":
        run_block(port, secs, request(key), want)
    else:
        asyncio.run(run_asyncio(port, secs, request(key), want))


if __name__ == "__main__":
    main()
