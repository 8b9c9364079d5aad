#!/usr/bin/python3
"""roomcast demo client: subscribers on every node, one publisher.

Connects SUBS clients per node to the room "demo:lobby" (and each to a room of
its own), publishes one message per second through the first node, and
prints what each subscriber receives. Stops after --seconds or on Ctrl-C.
Uses only Debian's python3-websockets and the standard library.
SPDX-License-Identifier: MIT
"""
import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import time

import websockets


def b64(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def mint(secret, sub, rooms, pub, ttl=3600):
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    now = int(time.time())
    body = b64(json.dumps({"sub": sub, "rooms": rooms, "pub": pub,
                           "iat": now, "exp": now + ttl}).encode())
    sig = hmac.new(secret.encode(), f"{head}.{body}".encode(),
                   hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


async def subscriber(url, secret, name, stop):
    token = mint(secret, name, ["demo:*"], [])
    async with websockets.connect(url, subprotocols=["roomcast.v1"],
                                  extra_headers={"Authorization":
                                                 "Bearer " + token}) as ws:
        welcome = json.loads(await ws.recv())
        print(f"{name:>10} connected to node {welcome['node']}", flush=True)
        await ws.send(json.dumps({"op": "join", "id": 1,
                                  "room": "demo:lobby"}))
        while not stop.is_set():
            try:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 0.5))
            except asyncio.TimeoutError:
                continue
            if frame["op"] == "msg":
                print(f"{name:>10} <- {frame['room']} seq={frame['seq']} "
                      f"{json.dumps(frame['data'])}", flush=True)


async def publisher(url, secret, stop, count):
    token = mint(secret, "publisher", [], ["demo:*"])
    async with websockets.connect(url + "?token=" + token,
                                  subprotocols=["roomcast.v1"]) as ws:
        await ws.recv()  # welcome
        for i in range(1, count + 1):
            if stop.is_set():
                break
            await ws.send(json.dumps({"op": "publish", "id": i,
                                      "room": "demo:lobby",
                                      "data": {"n": i, "text": "hello"}}))
            reply = json.loads(await ws.recv())
            print(f"{'publisher':>10} -> demo:lobby seq={reply.get('seq')}",
                  flush=True)
            await asyncio.sleep(1)
    stop.set()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", action="append", required=True,
                    help="ws URL of a node (repeat for several nodes)")
    ap.add_argument("--secret", required=True)
    ap.add_argument("--subs", type=int, default=2)
    ap.add_argument("--messages", type=int, default=10)
    args = ap.parse_args()
    stop = asyncio.Event()
    tasks = [subscriber(u, args.secret, f"n{i}-c{j}", stop)
             for i, u in enumerate(args.url) for j in range(args.subs)]
    subs = [asyncio.create_task(t) for t in tasks]
    await asyncio.sleep(1)
    await publisher(args.url[0], args.secret, stop, args.messages)
    await asyncio.gather(*subs)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
