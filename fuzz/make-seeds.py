#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target into fuzz/corpus/TARGET/.

The frames are built from docs/PROTOCOL.md, independently of the crate's encoders, so
the seeds also check that the document and the code agree (the peer_message target
round-trips every seed that parses). Run from anywhere: python3 fuzz/make-seeds.py
"""

import os
import struct

CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def frame(body):
    return struct.pack(">I", len(body)) + body


def nick(name):
    raw = name.encode()
    return bytes([len(raw)]) + raw


def hello(epoch, port, link_id, name, flags=0):
    return b"\x01" + struct.pack(">QHQB", epoch, port, link_id, flags) + nick(name)


def chat(origin, seq, hops, name, text, epoch=1):
    return b"\x02" + struct.pack(">QQQB", origin, epoch, seq, hops) + nick(name) + text.encode()


def addrs(entries):
    body = b"\x05" + struct.pack(">H", len(entries))
    for ip, port in entries:
        family = 4 if len(ip) == 4 else 6
        body += bytes([family]) + bytes(ip) + struct.pack(">H", port)
    return body


PING = b"\x03"
PONG = b"\x04"
RETIRE = b"\x06"
# The cleartext preamble of a link: magic, version 2, flags (1: a network key), reserved.
PREAMBLE = b"P2PC" + struct.pack(">HBB", 2, 0, 0)

# The examples of docs/PROTOCOL.md, and one of each other kind.
HELLO = hello(0x0123456789ABCDEF, 7654, 3, "alice")
HELLO_REFUSING = hello(5, 0, 0, "full", flags=1)
HELLO_LATER_FLAGS = hello(5, 7654, 9, "later", flags=0xFE)
CHAT = chat(42, 7, 16, "bob", "hello, wörld")
ADDRS = addrs([((127, 0, 0, 1), 7001), ((0,) * 15 + (1,), 7002)])
BODIES = {
    "hello": HELLO,
    "chat": CHAT,
    "chat-empty-text": chat(1, 0, 1, "x", ""),
    "chat-unsafe": chat(9, 1, 64, "eve", "\x1b[2J\u202eevil\r\x07"),
    "chat-long-nick": chat(3, 5, 255, "n" * 32, "max nick"),
    "ping": PING,
    "pong": PONG,
    "addrs": ADDRS,
    "addrs-empty": addrs([]),
    "retire": RETIRE,
    "hello-refusing": HELLO_REFUSING,
    "hello-later-flags": HELLO_LATER_FLAGS,
}

# Inside the channel, a peer's hello (who it is, the handshake proved).
PEER_HELLO = frame(hello(0x2000, 7000, 0, "peer"))
REMOTE_CHATS = frame(chat(0x3000, 0, 8, "carol", "hi")) + frame(chat(0x3000, 0, 8, "carol", "hi"))

# Schedule bytes of node_peer_bytes: low 3 bits the operation, high 5 its argument.
def op(code, arg=0):
    return bytes([(arg << 3) | code])


PEER_SENDS, WAIT, PEER_TAKES, CLIENTS_TAKE, CLIENT_SENDS, PEERS, ENDS, DRAIN = range(8)
ACCEPT, NEXT, HELLO_AS, ANSWER = range(4)
HELLO_FIRST, CLIENT, CONNECT, MAX_RATE, RAW_FIRST = 1, 2, 4, 64, 128

SEEDS = {
    "frame": {
        # One byte for the body limit (0xff: MAX_BODY_LEN), then the cut plan.
        "each-kind": b"\xff\x00" + b"".join(frame(b) for b in BODIES.values()),
        "cut-small": b"\xff\x03\x00\x04\x80" + frame(HELLO) + frame(CHAT) + frame(PING),
        "limit-16": b"\x10\x01\x02" + frame(PING) + frame(CHAT),
        "too-long": b"\xff\x00" + frame(PONG) + b"\x00\x0f\x42\x40",
        "empty": b"\xff\x00" + frame(PING) + b"\x00\x00\x00\x00",
    },
    "peer_message": dict(BODIES),
    "control_line": {
        # Repeats of each read, the cut plan, then what a client writes.
        "say": b"\x00\x00hello everyone\n",
        "commands": b"\x00\x00/nick bob\n/peers\n/status\n/help\n/quit\n",
        "connect": b"\x00\x00/connect 127.0.0.1:7001\n/connect nowhere\n",
        "usage": b"\x00\x00/nick two words\n/peers now\n/frob\n//not a command\r\n",
        "unsafe": "\x00\x00\x1b[31mred\u202eevil\u2066 \x7f\u0085\n".encode(),
        "not-utf8": b"\x00\x00ok\n\xff\xfe\n",
        "cut": b"\x00\x03\x00\x02\x80one\ntwo\r\nthree",
        # Pieces of 64 bytes, each read 128 times over: an over-long line, then short ones.
        "too-long": b"\x07\x01\x80" + b"x" * 64 + b"\nok\n",
    },
    "node_peer_bytes": {
        # [flags, schedule length, schedule, stream]
        "chat": bytes([HELLO_FIRST | CLIENT, 0]) + REMOTE_CHATS,
        "each-kind": bytes([HELLO_FIRST | CLIENT, 0])
        + frame(PING)
        + frame(PONG)
        + frame(ADDRS)
        + frame(chat(0x3000, 1, 2, "carol", "\x1b]0;title\x07 \u202eevil")),
        "handshake": bytes([CLIENT, 0]) + PEER_HELLO + frame(CHAT),
        "before-hello": bytes([CLIENT, 0]) + frame(CHAT),
        "duplicate-link": bytes([HELLO_FIRST | CLIENT, 4])
        + op(PEERS, ACCEPT)
        + op(PEERS, HELLO_AS)
        + op(DRAIN)
        + op(WAIT, 31)
        + REMOTE_CHATS,
        "client": bytes([HELLO_FIRST | CLIENT, 3])
        + op(CLIENT_SENDS, 20)
        + op(CLIENTS_TAKE, 31)
        + op(PEER_TAKES, 15)
        + b"hi all\n/peers\n/status\n/help\n/nick zed\n/connect 127.0.0.1:7002\n/quit\n",
        "dial": bytes([CONNECT | CLIENT, 4])
        + op(PEERS, ANSWER)
        + op(PEERS, NEXT)
        + op(PEERS, (1 << 2) | HELLO_AS)
        + op(DRAIN)
        + frame(ADDRS),
        "max-rate": bytes([HELLO_FIRST | CLIENT | MAX_RATE, 3])
        + op(PEER_SENDS, 20)
        + op(WAIT, 10)
        + op(PEER_SENDS, 20)
        + b"".join(frame(chat(0x3000, seq, 4, "carol", "flood")) for seq in range(8)),
        # A /connect target that went into the log unsanitised before 6b4c2cd.
        "connect-unsafe-target": bytes([CLIENT, 1])
        + op(CLIENT_SENDS, 20)
        + "/connect \x1b[2J\x1b]0;pwned\x07:7001\n".encode(),
        "silent": bytes([HELLO_FIRST, 4]) + op(WAIT, 13) + op(DRAIN) + op(WAIT, 20) + op(WAIT, 31),
        "retire": bytes([HELLO_FIRST | CLIENT, 0]) + REMOTE_CHATS + frame(RETIRE),
        # A second peer with the node's own key: a self-link (hello variant 7 has the
        # node's epoch), then one with another epoch (the same key in another process).
        "self-link": bytes([CLIENT, 4])
        + op(PEERS, (7 << 2) | ACCEPT)
        + op(PEERS, (7 << 2) | HELLO_AS)
        + op(PEERS, (7 << 2) | ACCEPT)
        + op(PEERS, (3 << 2) | HELLO_AS),
        # A peer that refuses the link (hello variant 6) after sending addresses.
        "refusing": bytes([CLIENT, 2])
        + op(PEERS, (1 << 2) | ACCEPT)
        + op(PEERS, (6 << 2) | HELLO_AS),
        # A handshake left half done on a new peer: preamble and message 1 sent, the
        # node's answer read, then silence until the handshake timeout.
        "half-handshake": bytes([HELLO_FIRST, 4])
        + op(PEERS, (2 << 2) | ACCEPT)
        + op(PEER_SENDS, 0)
        + op(PEER_TAKES, 31)
        + op(WAIT, 31),
        # Raw bytes: a preamble and a message 1 (any 32 bytes are an ephemeral key).
        "raw-handshake": bytes([RAW_FIRST | CLIENT, 0]) + PREAMBLE + struct.pack(">H", 32) + bytes(range(32)),
        "raw-v1-hello": bytes([RAW_FIRST, 0]) + bytes([0, 0, 0, 31, 1]) + b"P2P" + bytes(27),
        "raw-http": bytes([RAW_FIRST, 0]) + b"GET / HTTP/1.1\r\n\r\n",
        "raw-peer-later": bytes([HELLO_FIRST, 3])
        + op(ENDS, (1 << 2) | 3)
        + op(PEER_SENDS, 20)
        + op(DRAIN)
        + PREAMBLE + b"\x00\x20" + bytes(32) + b"\x00\x05hello",
    },
    "handshake": {
        # [mode, n, n cut bytes, stream]; mode 2: a real partner whose bytes are edited.
        "garbage-preamble": bytes([0, 0]) + PREAMBLE + struct.pack(">H", 32) + bytes(32),
        "garbage-cut": bytes([1, 2, 0, 0x81]) + b"P2PC\x00\x02\x01\x00" + b"\x00\x30" + bytes(48),
        "garbage-v1": bytes([0, 0]) + bytes([0, 0, 0, 31, 1]) + b"P2P" + bytes(27),
        "partner": bytes([2, 0]),
        "partner-network-key": bytes([3, 0]),
        "partner-other-network-key": bytes([7, 0]),
        "partner-cut": bytes([2, 3, 0, 6, 0x80]),
        "partner-edited": bytes([2, 1, 9]) + bytes(40) + b"\x01",
        "partner-trailing": bytes([2, 0]) + bytes(400) + b"\x00\x10garbage-after-it",
    },
    "transport": {
        # [n, n alteration bytes, read size, cut plan, stream]
        "one-frame": bytes([0, 0, 0]) + frame(CHAT),
        "frames-cut": bytes([0, 7, 3, 0, 10, 0x81]) + b"".join(frame(b) for b in BODIES.values()),
        "flip": bytes([2, 0, 0x05, 0, 1, 0x80]) + bytes(range(256)),
        "truncate": bytes([2, 0, 0x0a, 5, 1, 0x7f]) + bytes(300),
        "swap-drop": bytes([4, 0, 0x03, 0x07, 0, 0, 1, 0x10]) + bytes(200),
        "big": bytes([0, 0, 1, 0xFF]) + bytes(16000),
    },
}


def main():
    for target, seeds in SEEDS.items():
        folder = os.path.join(CORPUS, target)
        os.makedirs(folder, exist_ok=True)
        for name, data in seeds.items():
            with open(os.path.join(folder, name), "wb") as f:
                f.write(data)


if __name__ == "__main__":
    main()
