#!/usr/bin/env python3
"""A backend for roomcast in Python: let a signed-in user into roomcast (mint
the JWT its browser presents) and publish to a room, through Redis, with
redis-py (Debian: python3-redis; pip: redis>=4.1) and the standard library.

The two handlers are shaped like FastAPI routes (plain functions that take
the request's values and return what becomes the JSON body) but need no
framework. In a FastAPI app:

    from fastapi import Depends, FastAPI, HTTPException
    import fastapi_publish as rc

    app = FastAPI()

    @app.post("/roomcast/token")
    def token(user: str = Depends(current_user)):   # your own auth
        return rc.issue_token(user)

    @app.post("/rooms/{room}/messages")
    def message(room: str, body: dict, user: str = Depends(current_user)):
        try:
            return rc.post_message(room, body, user)
        except rc.HTTPError as e:
            raise HTTPException(e.status, e.detail)

From a shell:

    export ROOMCAST_JWT_SECRET=...  ROOMCAST_REDIS_URL=redis://10.0.0.5:6379/0
    python3 fastapi_publish.py token alice             # prints {"token": ...}
    python3 fastapi_publish.py publish chat:lobby '{"text":"hi"}'  # {"seq": N}
    python3 fastapi_publish.py publish chat:lobby '{"typing":"bob"}' --ephemeral

Durable messages go through the function library every roomcastd node loads
into Redis (FCALL roomcast_publish): Redis numbers them, keeps them in the
room's history and returns the seq. Ephemeral ones are a PUBLISH on the
room's channel: no seq, no history. See docs/REDIS.md.

SPDX-License-Identifier: MIT
"""
import base64
import hashlib
import hmac
import json
import os
import re
import sys
import time

import redis

SECRET = os.environ.get("ROOMCAST_JWT_SECRET", "")
REDIS_URL = os.environ.get("ROOMCAST_REDIS_URL", "redis://127.0.0.1:6379")
PREFIX = os.environ.get("ROOMCAST_PREFIX", "roomcast:")  # key_prefix
TOKEN_TTL = 3600  # s; a client refreshes (op refresh) before this

ROOM_RE = re.compile(r"[A-Za-z0-9_\-.:/@]{1,128}")  # PROTOCOL section 2


class HTTPError(Exception):
    """What a route answers instead of 200 (FastAPI: HTTPException)."""

    def __init__(self, status, detail):
        super().__init__(f"{status} {detail}")
        self.status, self.detail = status, detail


# ---------------------------------------------------------------- tokens

def _b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def mint_token(sub, rooms, pub=(), ttl=TOKEN_TTL, secret=None):
    """An HS256 JWT roomcastd accepts (jwt_alg HS256, jwt_secret the same
    secret): `sub` is the user, `rooms`/`pub` the room patterns it may join
    and publish to (exact name, "prefix*", or "*")."""
    secret = secret or SECRET
    if not secret:
        raise RuntimeError("set ROOMCAST_JWT_SECRET (roomcastd's jwt_secret)")
    now = int(time.time())
    claims = {"sub": sub, "iat": now, "exp": now + ttl, "rooms": list(rooms)}
    if pub:
        claims["pub"] = list(pub)
    head = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"},
                              separators=(",", ":")).encode())
    body = _b64url(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{head}.{body}".encode("ascii")
    sig = hmac.new(secret.encode(), signing_input, hashlib.sha256).digest()
    return f"{head}.{body}.{_b64url(sig)}"


# ---------------------------------------------------------------- Redis

_redis = None


def get_redis():
    """One client per process (redis-py pools its connections)."""
    global _redis
    if _redis is None:
        _redis = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    return _redis


def publish(r, room, data):
    """Durable: returns the seq clients will see on this message."""
    # PROTOCOL section 5: the one key is the room's key, prefix{room}, so
    # Redis (and Redis Cluster) routes the call by a key that exists.
    return r.fcall("roomcast_publish", 1, f"{PREFIX}{{{room}}}",
                   json.dumps(data, separators=(",", ":")))


def publish_ephemeral(r, room, data):
    """No seq, no history (typing, presence). Returns how many nodes have a
    member of the room (0 is not an error)."""
    return r.publish(f"{PREFIX}{{{room}}}",
                     json.dumps(data, separators=(",", ":")))


# ---------------------------------------------------------------- routes

def issue_token(user):
    """POST /roomcast/token: the signed-in user's roomcast token. Which
    rooms a user may join or publish to is your application's decision."""
    return {"token": mint_token(user, rooms=["chat:*", f"user:{user}"],
                                pub=["chat:*"]),
            "expires_in": TOKEN_TTL}


def post_message(room, body, user, ephemeral=False):
    """POST /rooms/{room}/messages: publish body (a JSON object) to room on
    behalf of user; answers {"room", "seq"} (seq absent when ephemeral)."""
    if not ROOM_RE.fullmatch(room):
        raise HTTPError(400, "bad room name")
    if not isinstance(body, dict):
        raise HTTPError(422, "body must be a JSON object")
    data = dict(body, sender=user)
    try:
        if ephemeral:
            publish_ephemeral(get_redis(), room, data)
            return {"room": room}
        return {"room": room, "seq": publish(get_redis(), room, data)}
    except redis.exceptions.ResponseError as e:  # e.g. over max_publish
        raise HTTPError(422, str(e))
    except redis.exceptions.ConnectionError as e:
        raise HTTPError(503, f"redis: {e}")


# ---------------------------------------------------------------- shell

def main(argv):
    if len(argv) == 2 and argv[0] == "token":
        print(json.dumps(issue_token(argv[1])))
        return 0
    if len(argv) in (3, 4) and argv[0] == "publish" and \
            argv[3:] in ([], ["--ephemeral"]):
        try:
            body = json.loads(argv[2])
        except ValueError as e:
            print(f"fastapi_publish.py: data is not JSON: {e}",
                  file=sys.stderr)
            return 2
        try:
            out = post_message(argv[1], body, user="cli",
                               ephemeral=bool(argv[3:]))
        except HTTPError as e:
            print(f"fastapi_publish.py: {e}", file=sys.stderr)
            return 1
        print(json.dumps(out))
        return 0
    print("usage: fastapi_publish.py token USER\n"
          "       fastapi_publish.py publish ROOM JSON [--ephemeral]",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
