#!/usr/bin/env python3
"""Publish to roomcast rooms from a backend service, through Redis, with
nothing but the Python standard library (RESP spoken over a plain socket).

    python3 publish.py                                  # a short demo
    python3 publish.py ROOM JSON [--ephemeral]          # one message
    ROOMCAST_REDIS_URL=redis://10.0.0.5:6379/0 python3 publish.py ...

Durable messages go through the function library every roomcastd node loads
into Redis (`FCALL roomcast_publish 1 <room> <data>`): Redis numbers them,
keeps them in the room's history and returns the seq. Ephemeral ones are a
plain `PUBLISH <prefix>{<room>} <data>`: no seq, no history, for presence or
typing indicators. Either way `data` must be JSON: roomcastd drops (and
counts) anything else. See docs/REDIS.md.

SPDX-License-Identifier: MIT
"""
import json
import os
import socket
import sys
import urllib.parse


class Redis:
    """One blocking Redis connection; command() returns the reply."""

    def __init__(self, url="redis://127.0.0.1:6379", timeout=5.0):
        u = urllib.parse.urlsplit(url)
        if u.scheme != "redis":
            raise ValueError("expected redis://[[user]:password@]host"
                             "[:port][/db]")
        self.sock = socket.create_connection((u.hostname or "127.0.0.1",
                                              u.port or 6379), timeout)
        self.file = self.sock.makefile("rb")
        if u.password is not None:
            user = urllib.parse.unquote(u.username or "")
            pw = urllib.parse.unquote(u.password)
            self.command("AUTH", *([user, pw] if user else [pw]))
        elif u.username:  # redis://secret@host: a password alone
            self.command("AUTH", urllib.parse.unquote(u.username))
        if u.path.strip("/"):
            self.command("SELECT", u.path.strip("/"))

    def command(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode("utf-8")
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))
        return self._reply()

    def _reply(self):
        line = self.file.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError("Redis closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode(errors="replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self.file.read(n + 2)[:-2]
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise ConnectionError(f"unexpected reply {line!r}")

    def close(self):
        self.sock.close()


def publish(r, room, data):
    """Durable: returns the message's seq in the room."""
    return r.command("FCALL", "roomcast_publish", "1", room,
                     json.dumps(data, separators=(",", ":"), allow_nan=False))


def publish_ephemeral(r, room, data, prefix="roomcast:"):
    """Ephemeral: returns how many nodes have members in the room."""
    return r.command("PUBLISH", f"{prefix}{{{room}}}",
                     json.dumps(data, separators=(",", ":"), allow_nan=False))


def main(argv):
    url = os.environ.get("ROOMCAST_REDIS_URL") or "redis://127.0.0.1:6379"
    prefix = os.environ.get("ROOMCAST_KEY_PREFIX", "roomcast:")
    ephemeral = "--ephemeral" in argv
    args = [a for a in argv if a != "--ephemeral"]
    r = Redis(url)
    try:
        if not args:  # the demo: what a chat backend would do
            seq = publish(r, "chat:lobby", {"from": "bot", "text": "hello"})
            print(f"durable   chat:lobby seq={seq}")
            n = publish_ephemeral(r, "chat:lobby", {"typing": "bot"}, prefix)
            print(f"ephemeral chat:lobby reached {n} node(s)")
            return 0
        if len(args) != 2:
            print(__doc__.split("\n\n")[1], file=sys.stderr)
            return 2
        room, text = args
        try:
            data = json.loads(text)
        except ValueError as e:
            print(f"publish.py: data is not JSON: {e}", file=sys.stderr)
            return 2
        if ephemeral:
            print(publish_ephemeral(r, room, data, prefix))
        else:
            print(publish(r, room, data))
        return 0
    finally:
        r.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
