#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target into fuzz/corpus/TARGET/.

The frames are built from docs/PROTOCOL.md, independently of the crate's encoders, so
the seeds also check that the document and the code agree (the peer_message target
round-trips every seed that parses). The batches of signed lines follow the layout of
src/wire/lines.rs and are signed here, with an Ed25519 of this file's own (RFC 8032's
reference code), over the context and BLAKE3 digest of src/proto/author.rs: a node
that gets one checks the signature for real. Needs the blake3 module
(`pip install blake3`). Run from anywhere: python3 fuzz/make-seeds.py
"""

import hashlib
import os
import struct

import blake3

CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def frame(body):
    return struct.pack(">I", len(body)) + body


def nick(name):
    raw = name.encode()
    return bytes([len(raw)]) + raw


def hello(epoch, port, link_id, name, flags=0):
    return b"\x01" + struct.pack(">QHQB", epoch, port, link_id, flags) + nick(name)


# Ed25519, after RFC 8032, section 6: slow and simple, for a few seeds.
ED_P = 2**255 - 19
ED_Q = 2**252 + 27742317777372353535851937790883648493
ED_D = -121665 * pow(121666, ED_P - 2, ED_P) % ED_P
ED_SQRT_M1 = pow(2, (ED_P - 1) // 4, ED_P)


def ed_add(a, b):
    x = (a[1] - a[0]) * (b[1] - b[0]) % ED_P
    y = (a[1] + a[0]) * (b[1] + b[0]) % ED_P
    z = 2 * a[3] * b[3] * ED_D % ED_P
    t = 2 * a[2] * b[2] % ED_P
    e, f, g, h = y - x, t - z, t + z, y + x
    return (e * f, g * h, f * g, e * h)


def ed_mul(s, point):
    acc = (0, 1, 1, 0)
    while s > 0:
        if s & 1:
            acc = ed_add(acc, point)
        point = ed_add(point, point)
        s >>= 1
    return acc


def ed_compress(point):
    zinv = pow(point[2], ED_P - 2, ED_P)
    x, y = point[0] * zinv % ED_P, point[1] * zinv % ED_P
    return int.to_bytes(y | ((x & 1) << 255), 32, "little")


def ed_base():
    y = 4 * pow(5, ED_P - 2, ED_P) % ED_P
    x2 = (y * y - 1) * pow(ED_D * y * y + 1, ED_P - 2, ED_P)
    x = pow(x2, (ED_P + 3) // 8, ED_P)
    if (x * x - x2) % ED_P != 0:
        x = x * ED_SQRT_M1 % ED_P
    if x & 1:
        x = ED_P - x
    return (x, y, 1, x * y % ED_P)


ED_G = ed_base()


def ed_expand(secret):
    h = hashlib.sha512(secret).digest()
    a = int.from_bytes(h[:32], "little")
    a &= (1 << 254) - 8
    a |= 1 << 254
    return a, h[32:]


def public_key(secret):
    return ed_compress(ed_mul(ed_expand(secret)[0], ED_G))


def ed_sign(secret, message):
    a, prefix = ed_expand(secret)
    key = ed_compress(ed_mul(a, ED_G))
    r = int.from_bytes(hashlib.sha512(prefix + message).digest(), "little") % ED_Q
    big_r = ed_compress(ed_mul(r, ED_G))
    h = int.from_bytes(hashlib.sha512(big_r + key + message).digest(), "little") % ED_Q
    return big_r + int.to_bytes((r + h * a) % ED_Q, 32, "little")


# What an author's signature covers: this context, then a BLAKE3 digest of the signed
# part in key-derivation mode with DIGEST_CONTEXT.
BATCH_CONTEXT = b"p2pchat v2 lines:"
DIGEST_CONTEXT = "p2pchat v2 2026-12-02 batch of signed lines"


def record(secret, epoch, first, lines):
    """A batch's record: the signed part (the author's key, its run, the first line's
    sequence number, the line count, then per line its time in ms, nick and text) and
    the author's signature over it. `lines` holds (time_ms, nick, text)."""
    signed = public_key(secret) + struct.pack(">QQH", epoch, first, len(lines))
    for time_ms, name, text in lines:
        raw = text.encode()
        signed += struct.pack(">Q", time_ms) + nick(name) + struct.pack(">H", len(raw)) + raw
    digest = blake3.blake3(signed, derive_key_context=DIGEST_CONTEXT).digest()
    return signed + ed_sign(secret, BATCH_CONTEXT + digest)


def batch(rec, hops, flags=0):
    """A batch message: the envelope (hops, flags: 1 late) and a record."""
    return b"\x02" + bytes([hops, flags]) + rec


def have(entries, flags=1):
    """A summary: flags (1 complete, 2 more follow), then per author run its node id
    (the first 8 bytes of its key), epoch and the ranges of sequence numbers seen
    (a count byte, then each range's start and end, end excluded)."""
    body = b"\x07" + bytes([flags]) + struct.pack(">H", len(entries))
    for author, epoch, ranges in entries:
        body += struct.pack(">QQB", author, epoch, len(ranges))
        for start, end in ranges:
            body += struct.pack(">QQ", start, end)
    return body


def node_id(secret):
    return struct.unpack(">Q", public_key(secret)[:8])[0]


def flip(data, at, mask=1):
    return data[:at] + bytes([data[at] ^ mask]) + data[at + 1 :]


def addrs(entries):
    body = b"\x05" + struct.pack(">H", len(entries))
    for ip, port in entries:
        family = 4 if len(ip) == 4 else 6
        body += bytes([family]) + bytes(ip) + struct.pack(">H", port)
    return body


PING = b"\x03"
PONG = b"\x04"
RETIRE = b"\x06"
# Identity keys of node_peer_bytes: identity(k) is 32 bytes of 0x40 + k; 7 is the
# node's own.
def identity(k):
    return bytes([0x40 + k]) * 32


# An author of the seeds that is none of node_peer_bytes' peers.
CAROL = identity(3)
ME = identity(7)
# node_peer_bytes' clock starts at 0 ms on the Unix clock (the node's epoch is 7 ns).
T = 1000
# The cleartext preamble of a link: magic, version 2, flags (1: a network key), reserved.
PREAMBLE = b"P2PC" + struct.pack(">HBB", 2, 0, 0)

# The examples of docs/PROTOCOL.md, and one of each other kind.
HELLO = hello(0x0123456789ABCDEF, 7654, 3, "alice")
HELLO_REFUSING = hello(5, 0, 0, "full", flags=1)
HELLO_LATER_FLAGS = hello(5, 7654, 9, "later", flags=0xFE)
LINES = batch(record(CAROL, 99, 7, [(T, "bob", "hello, wörld")]), 16)
ADDRS = addrs([((127, 0, 0, 1), 7001), ((0,) * 15 + (1,), 7002)])
HAVE = have([(node_id(CAROL), 99, [(0, 8)]), (0x0123456789ABCDEF, 5, [])])
BODIES = {
    "hello": HELLO,
    "lines": LINES,
    "lines-empty-text": batch(record(CAROL, 1, 0, [(0, "x", "")]), 1),
    "lines-unsafe": batch(record(CAROL, 1, 1, [(T, "eve", "\x1b[2J\u202eevil\r\x07")]), 64),
    "lines-long-nick": batch(record(CAROL, 1, 5, [(T, "n" * 32, "max nick")]), 255),
    "lines-late": batch(
        record(CAROL, 2, 40, [(T, "carol", "one"), (T + 1, "dave", "two"), (T + 2, "carol", "three")]),
        8,
        flags=1,
    ),
    "lines-later-flags": batch(record(CAROL, 2, 43, [(T, "carol", "four")]), 8, flags=0xFE),
    "have": HAVE,
    "have-empty": have([]),
    "have-question": have([(node_id(CAROL), 2, [(0, 3), (5, 9)])], flags=0),
    "have-more": have([(1, 2, [(3, 4)])], flags=2),
    "have-bad-range": have([(1, 2, [(0, 5), (5, 7)])]),
    "ping": PING,
    "pong": PONG,
    "addrs": ADDRS,
    "addrs-empty": addrs([]),
    "retire": RETIRE,
    "walk": b"\x0c\x06",
    "walk-addr": b"\x0c\x02\x04" + bytes([127, 0, 0, 1]) + struct.pack(">H", 7001),
    "hello-refusing": HELLO_REFUSING,
    "hello-later-flags": HELLO_LATER_FLAGS,
}

# Inside the channel, a peer's hello (who it is, the handshake proved).
PEER_HELLO = frame(hello(0x2000, 7000, 0, "peer"))
# Lines of an author none of the peers is, and a copy of them.
REMOTE_LINES = frame(batch(record(CAROL, 1, 0, [(T, "carol", "hi"), (T, "carol", "there")]), 8))
REMOTE_LINES += REMOTE_LINES

# Schedule bytes of node_peer_bytes: low 3 bits the operation, high 5 its argument.
def op(code, arg=0):
    return bytes([(arg << 3) | code])


PEER_SENDS, WAIT, PEER_TAKES, CLIENTS_TAKE, CLIENT_SENDS, PEERS, ENDS, DRAIN = range(8)
ACCEPT, NEXT, HELLO_AS, ANSWER = range(4)
HELLO_FIRST, CLIENT, CONNECT, MAX_RATE, RAW_FIRST = 1, 2, 4, 64, 128
# PEER_SENDS from this argument on: the peer sends batches the harness signs with a real
# author (see Harness::peer_signs); the variant adds the author (3: the node's key, in
# another run) and 4 to alter a byte of each batch after it is signed.
SIGNS = 24
ME_AUTHOR, ALTERED = 3, 4


def signs(variant, lines, flags=0x80, amount=0, alter=None):
    """A PeerSigns op and the stream bytes it reads: flags (bit 0 late, bit 1 a newer
    run, bits 2-3 the start: 0 in order, 1 a gap, 2 again, 3 far ahead, bits 4-7 hops),
    amount, the line count less 1, the bytes of text per line, the texts (all as long as
    the first); with ALTERED, where to alter each record and how."""
    width = len(lines[0].encode())
    stream = bytes([flags, amount, len(lines) - 1, width])
    stream += b"".join(text.encode().ljust(width, b".")[:width] for text in lines)
    if alter is not None:
        stream += struct.pack(">HB", *alter)
    return op(PEER_SENDS, SIGNS + variant), stream


def draft_lines(lines):
    """Lines as the lines target reads them: a time byte, a nick (length byte), a text
    (a length byte, in units of 17 bytes, padded with dots)."""
    out = b""
    for i, (name, text) in enumerate(lines):
        raw = text.encode()
        units = -(-len(raw) // 17)
        out += bytes([i]) + nick(name) + bytes([units]) + raw.ljust(units * 17, b".")
    return out


def sends(code, data):
    """A PEER_SENDS or CLIENT_SENDS op that reads exactly `data` (1 to 16 bytes)."""
    assert 1 <= len(data) <= 16
    return op(code, len(data) - 1), data


def scenario(flags, *steps):
    """[flags, schedule length, schedule, stream]: each step an op, or an op and the
    stream bytes it reads; stream bytes after the last step go to the current peer."""
    schedule, stream = b"", b""
    for step in steps:
        if isinstance(step, tuple):
            schedule += step[0]
            stream += step[1]
        else:
            schedule += step
    return bytes([flags, len(schedule)]) + schedule + stream

SEEDS = {
    "frame": {
        # One byte for the body limit (0xff: MAX_BODY_LEN), then the cut plan.
        "each-kind": b"\xff\x00" + b"".join(frame(b) for b in BODIES.values()),
        "cut-small": b"\xff\x03\x00\x04\x80" + frame(HELLO) + frame(LINES) + frame(PING),
        "limit-16": b"\x10\x01\x02" + frame(PING) + frame(LINES),
        "too-long": b"\xff\x00" + frame(PONG) + b"\x00\x0f\x42\x40",
        "empty": b"\xff\x00" + frame(PING) + b"\x00\x00\x00\x00",
    },
    "peer_message": dict(BODIES),
    "control_line": {
        # Repeats of each read, the cut plan, then what a client writes.
        "say": b"\x00\x00hello everyone\n",
        "commands": b"\x00\x00/nick bob\n/peers\n/status\n/history\n/history 5\n/help\n/quit\n",
        "history-usage": b"\x00\x00/history x\n/history 1 2\n/history -1\n/historyx\n",
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
        "lines": bytes([HELLO_FIRST | CLIENT, 0]) + REMOTE_LINES,
        "each-kind": bytes([HELLO_FIRST | CLIENT, 0])
        + frame(PING)
        + frame(PONG)
        + frame(ADDRS)
        + frame(HAVE)
        + frame(batch(record(CAROL, 1, 2, [(T, "carol", "\x1b]0;title\x07 \u202eevil")]), 2)),
        "handshake": bytes([CLIENT, 0]) + PEER_HELLO + frame(LINES),
        "before-hello": bytes([CLIENT, 0]) + frame(LINES),
        # A batch whose signature fails (one bit of its text flipped after signing):
        # the peer is cut, and no client sees "forged".
        "forged": bytes([HELLO_FIRST | CLIENT, 0])
        + frame(flip(batch(record(CAROL, 1, 0, [(T, "carol", "forged")]), 8), 3 + 50 + 11 + 5)),
        # Batches the harness signs: in order, with a gap in an older run, with a gap in a
        # newer run (its lines wait), again, far ahead; time for the wait; the node's key
        # in another run, /history and the client's queue; then batches altered after
        # they were signed, each from a peer of its own (the first cuts its sender), whose
        # lines no client may see.
        "signed": scenario(
            HELLO_FIRST | CLIENT,
            signs(0, ["hello", "world", "again"]),
            signs(1, ["gap"], flags=0x84, amount=2),
            signs(2, ["waits", "for"], flags=0x86, amount=0),
            signs(0, ["hello"], flags=0x88, amount=1),
            signs(0, ["ahead"], flags=0x8C),
            op(DRAIN),
            op(WAIT, 4),
            signs(ME_AUTHOR, ["twin"], flags=0x82),
            sends(CLIENT_SENDS, b"/history 9\n"),
            op(CLIENTS_TAKE, 31),
            signs(ALTERED, ["forged"], alter=(0x60, 1)),
            op(PEERS, (1 << 2) | ACCEPT),
            op(PEERS, (1 << 2) | HELLO_AS),
            signs(ALTERED | 1, ["forged too"], alter=(0x10, 0x80)),
            op(DRAIN),
        ),
        # Late lines written a while ago (a catch-up), then a summary that asks for
        # everything: the node sends its own lines back, as late batches; then a question
        # about the node's own run.
        "catch-up": scenario(
            HELLO_FIRST | CLIENT,
            sends(CLIENT_SENDS, b"hello, peers\n"),
            signs(1, ["old news", "older news"], flags=0x81, amount=30),
            sends(PEER_SENDS, frame(have([]))),
            op(DRAIN),
            op(WAIT, 6),
            op(PEER_TAKES, 31),
        )
        + frame(have([(node_id(ME), 7, [])], flags=0)),
        "duplicate-link": bytes([HELLO_FIRST | CLIENT, 4])
        + op(PEERS, ACCEPT)
        + op(PEERS, HELLO_AS)
        + op(DRAIN)
        + op(WAIT, 31)
        + REMOTE_LINES,
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
        "max-rate": scenario(
            HELLO_FIRST | CLIENT | MAX_RATE,
            *[signs(0, ["flood"] * n, flags=0x40) for n in (1, 1, 2, 4)],
            op(WAIT, 10),
            signs(0, ["flood"] * 8, flags=0x40),
        ),
        # A /connect target that went into the log unsanitised before 6b4c2cd.
        "connect-unsafe-target": bytes([CLIENT, 1])
        + op(CLIENT_SENDS, 20)
        + "/connect \x1b[2J\x1b]0;pwned\x07:7001\n".encode(),
        "silent": bytes([HELLO_FIRST, 4]) + op(WAIT, 13) + op(DRAIN) + op(WAIT, 20) + op(WAIT, 31),
        "retire": bytes([HELLO_FIRST | CLIENT, 0]) + REMOTE_LINES + frame(RETIRE),
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
    "lines": {
        # [mode, ...]: 0 a record as it is; 1 a draft's first line, epoch and lines; 2 the
        # same, written by an author, with where and how to alter its first batch.
        "record": b"\x00" + record(CAROL, 99, 7, [(T, "bob", "hello, wörld")]),
        "record-lines": b"\x00"
        + record(CAROL, 2, 40, [(T, "carol", "one"), (T + 1, "dave", ""), (T + 2, "n" * 32, "x" * 300)]),
        "record-no-lines": b"\x00" + record(CAROL, 1, 0, []),
        "record-max-seq": b"\x00" + record(CAROL, 1, 2**62 - 1, [(T, "a", "x")]),
        "record-bad-nick": b"\x00" + record(CAROL, 1, 0, [(T, "a#b", "x")]),
        "draft": b"\x01" + struct.pack(">QQ", 5, 99) + draft_lines([("alice", "hi"), ("bob", "hello, wörld")]),
        "draft-max-seq": b"\x01" + struct.pack(">QQ", 2**62 - 1, 1) + draft_lines([("a", "x"), ("b", "y")]),
        "author": b"\x02" + struct.pack(">QQHB", 0, 77, 60, 1) + draft_lines([("alice", "pay bob 5")]),
        # Lines of 4 KiB: more than one batch holds.
        "author-full": b"\x05"
        + struct.pack(">QQHB", 3, 77, 0x1234, 0x80)
        + b"".join(bytes([i, 1]) + b"n" + bytes([241]) + b"x" * 4096 for i in range(16)),
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
        "one-frame": bytes([0, 0, 0]) + frame(LINES),
        "frames-cut": bytes([0, 7, 3, 0, 10, 0x81]) + b"".join(frame(b) for b in BODIES.values()),
        "flip": bytes([2, 0, 0x05, 0, 1, 0x80]) + bytes(range(256)),
        "truncate": bytes([2, 0, 0x0a, 5, 1, 0x7f]) + bytes(300),
        "swap-drop": bytes([4, 0, 0x03, 0x07, 0, 0, 1, 0x10]) + bytes(200),
        "big": bytes([0, 0, 1, 0xFF]) + bytes(16000),
    },
}


# Seeds of earlier versions of the protocol, removed when the corpus is written again.
RETIRED = {
    "peer_message": ["chat", "chat-empty-text", "chat-unsafe", "chat-long-nick"],
    "node_peer_bytes": ["chat"],
}


def main():
    for target, names in RETIRED.items():
        for name in names:
            path = os.path.join(CORPUS, target, name)
            if os.path.exists(path):
                os.remove(path)
    for target, seeds in SEEDS.items():
        folder = os.path.join(CORPUS, target)
        os.makedirs(folder, exist_ok=True)
        for name, data in seeds.items():
            with open(os.path.join(folder, name), "wb") as f:
                f.write(data)


if __name__ == "__main__":
    main()
