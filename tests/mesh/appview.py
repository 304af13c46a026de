#!/usr/bin/env python3
"""appview.py - what an application sees of its connection, for the mesh
suites: the address it is connected to and from, and what getsockopt()
answers. One line per call, the same format with and without capture.

  appview.py view HOST PORT     connect (AF_INET6 for an IPv6 or ::ffff:
                                address), PING the redis there, print
                                "peer ADDR PORT sock ADDR pong OK"
  appview.py opts HOST PORT     connect, print what SO_ORIGINAL_DST (SOL_IP,
                                80), TCP_INFO and SO_RCVBUF answer
  appview.py accept HOST PORT   IPv4: listen, print "listening", accept one
                                connection, print "orig ADDR PORT local ADDR
                                PORT" (its SO_ORIGINAL_DST), close
  appview.py touch HOST PORT    connect, print "peer ADDR PORT", close
"""
import errno
import socket
import sys

SO_ORIGINAL_DST = 80


def connect(host, port):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect((host, int(port)))
    return s


def view(host, port):
    s = connect(host, port)
    peer = s.getpeername()
    sock = s.getsockname()
    s.sendall(b"PING\r\n")
    pong = s.recv(64)
    s.close()
    print("peer %s %d sock %s pong %s" % (peer[0], peer[1], sock[0],
                                          "OK" if pong == b"+PONG\r\n" else repr(pong)))


def opts(host, port):
    s = connect(host, port)
    try:
        v = s.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
        od = "value %s" % v.hex()
    except OSError as e:
        od = "error %s" % errno.errorcode.get(e.errno, str(e.errno))
    info = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 512)
    rcvbuf = s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    s.close()
    print("original_dst %s tcp_info %d B state %d rcvbuf %d" % (od, len(info), info[0], rcvbuf))


def accept(host, port):
    """A sidecar's first step: accept one connection, read its original
    destination (SO_ORIGINAL_DST), close it."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, int(port)))
    s.listen(8)
    sys.stdout.write("listening\n")
    sys.stdout.flush()
    s.settimeout(30)
    c, peer = s.accept()
    v = c.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
    print("orig %s %d local %s %d" % (socket.inet_ntoa(v[4:8]), int.from_bytes(v[2:4], "big"),
                                      c.getsockname()[0], c.getsockname()[1]))
    c.close()
    s.close()


def touch(host, port):
    """connect, print what getpeername() says, close"""
    s = connect(host, port)
    peer = s.getpeername()
    s.close()
    print("peer %s %d" % (peer[0], peer[1]))


MODES = {"view": view, "opts": opts, "accept": accept, "touch": touch}

if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in MODES:
        sys.stderr.write(__doc__)
        sys.exit(2)
    MODES[sys.argv[1]](sys.argv[2], sys.argv[3])
