#!/usr/bin/env python3
"""A tiny DNS responder on a loopback address, for scripts/test-container.

    loopback-dns.py 127.53.0.1 peers.moscow-time.test 127.0.0.1

Answers A queries for NAME with ADDR (TTL 5 s); any other name gets NXDOMAIN and
other record types for NAME an empty answer. It lets the container test prove that
the service's getaddrinfo (glibc, nss_dns, in a scratch image) resolves a name
through a real DNS query, without leaving 127.0.0.0/8. Runs until killed.
"""
import socket
import struct
import sys


def main() -> None:
    listen, name, addr = sys.argv[1], sys.argv[2].rstrip(".").lower(), sys.argv[3]
    if not listen.startswith("127."):
        sys.exit("loopback-dns: refusing to listen outside 127.0.0.0/8")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((listen, 53))
    print(f"loopback-dns: {listen}:53 answers {name} A {addr}", flush=True)
    while True:
        query, peer = sock.recvfrom(512)
        if len(query) < 12:
            continue
        tid, flags = struct.unpack(">HH", query[:4])
        labels, i = [], 12
        while i < len(query) and query[i]:
            labels.append(query[i + 1 : i + 1 + query[i]].decode("ascii", "replace"))
            i += query[i] + 1
        end = i + 5  # zero label, QTYPE, QCLASS
        if end > len(query):
            continue
        qtype = struct.unpack(">H", query[i + 1 : i + 3])[0]
        qname = ".".join(labels).lower()
        answers = b""
        count = 0
        rcode = 0
        if qname != name:
            rcode = 3  # NXDOMAIN
        elif qtype == 1:
            answers = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 5, 4) + socket.inet_aton(addr)
            count = 1
        rd = flags & 0x0100
        header = struct.pack(">HHHHHH", tid, 0x8400 | 0x0080 | rd | rcode, 1, count, 0, 0)
        sock.sendto(header + query[12:end] + answers, peer)


if __name__ == "__main__":
    main()
