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


def report(lat_ns, elapsed_ns):
    if not lat_ns:
        sys.exit("redis_get.py: no request completed after the warm-up")
    lat_ns.sort()
    n = len(lat_ns)

    def pct(p):
        return lat_ns[min(n - 1, int(n * p))] / 1000

    print(json.dumps({"rps": round(n * 1e9 / elapsed_ns, 1),
                      "p50_us": round(pct(0.50), 1),
                      "p99_us": round(pct(0.99), 1)}))


def run_block(port, secs, req, want):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    lat = []
    start = time.monotonic_ns()
    begin = start + WARMUP_NS
    end = start + secs * 1_000_000_000
    now = start
    while now < end:
        t0 = now
        s.sendall(req)
        got = b""
        while len(got) < len(want):
            chunk = s.recv(65536)
            if not chunk:
                sys.exit("redis_get.py: the server closed the connection")
            got += chunk
            if not want.startswith(got[:len(want)]):
                break  # a nil, an error: not the reply to wait for
        if got != want:
            sys.exit("redis_get.py: unexpected reply %r" % got[:80])
        now = time.monotonic_ns()
        if t0 >= begin:
            lat.append(now - t0)
    s.close()
    report(lat, now - begin)


async def run_asyncio(port, secs, req, want):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    lat = []
    start = time.monotonic_ns()
    begin = start + WARMUP_NS
    end = start + secs * 1_000_000_000
    now = start
    while now < end:
        t0 = now
        writer.write(req)
        got = b""
        while len(got) < len(want):
            chunk = await reader.read(65536)
            if not chunk:
                sys.exit("redis_get.py: the server closed the connection")
            got += chunk
            if not want.startswith(got[:len(want)]):
                break  # a nil, an error: not the reply to wait for
        if got != want:
            sys.exit("redis_get.py: unexpected reply %r" % got[:80])
        now = time.monotonic_ns()
        if t0 >= begin:
            lat.append(now - t0)
    writer.close()
    await writer.wait_closed()
    report(lat, now - begin)


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
