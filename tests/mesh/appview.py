#!/usr/bin/env python3
"""appview.py - what an application sees of its connection, for the mesh
suites: the address it is connected to and from, and what getsockopt()
answers. One line per call, the same format with and without capture.

  appview.py view HOST PORT     connect (AF_INET6 for an IPv6 or ::ffff:
                                address), PING the redis there, print
                                "peer ADDR PORT sock ADDR pong OK"
  appview.py opts HOST PORT     connect, print what SO_ORIGINAL_DST (SOL_IP,
                                80), TCP_INFO and SO_RCVBUF answer
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


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in ("view", "opts"):
        sys.stderr.write(__doc__)
        sys.exit(2)
    {"view": view, "opts": opts}[sys.argv[1]](sys.argv[2], sys.argv[3])
