#!/usr/bin/env python3
"""Watch Janus streaming mountpoint 1 over WebRTC with aiortc and count decoded frames.

Needs `pip install aiortc` and Janus started by `env.sh up && env.sh start RTSP_URL`.
Usage: check.py [--url http://127.0.0.2:8088/janus] [--id 1] [--seconds 5] [--sdp-out FILE]
Prints "frames: N"; exits 1 when N == 0.
"""
import argparse
import asyncio
import json
import random
import string
import sys
import time
import urllib.request

import aioice.ice
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

# Janus (in netns xaso-janus, 127.0.0.2) can only route back to 127.0.0.3, the root-side
# veth address: offer exactly that host candidate (no STUN, no other interfaces).
aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.3"]


def log(msg):
    print(f"check: {msg}", file=sys.stderr, flush=True)


class Janus:
    """Minimal Janus REST client (plain HTTP, long-poll for events)."""

    def __init__(self, base):
        self.base = base.rstrip("/")
        self.session = self.handle = None

    def _req(self, path, body=None, timeout=10):
        data = None
        if body is not None:
            body = dict(body, transaction="".join(random.choices(string.ascii_letters, k=12)))
            data = json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read())

    async def post(self, body, path=""):
        r = await asyncio.to_thread(self._req, path, body)
        if r.get("janus") == "error":
            raise RuntimeError(f"janus error: {r}")
        return r

    async def create(self):
        self.session = (await self.post({"janus": "create"}))["data"]["id"]
        self.handle = (await self.post({"janus": "attach", "plugin": "janus.plugin.streaming"},
                                       f"/{self.session}"))["data"]["id"]

    async def message(self, body, jsep=None):
        msg = {"janus": "message", "body": body}
        if jsep:
            msg["jsep"] = jsep
        return await self.post(msg, f"/{self.session}/{self.handle}")

    async def poll(self, timeout=40):
        """One long-poll (Janus holds it up to 30 s); returns a list of events."""
        r = await asyncio.to_thread(self._req, f"/{self.session}?maxev=10", None, timeout)
        return r if isinstance(r, list) else [r]

    async def keepalive(self):
        return await self.post({"janus": "keepalive"}, f"/{self.session}")


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="http://127.0.0.2:8088/janus")
    ap.add_argument("--id", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--sdp-out", help="write Janus's offer SDP here")
    a = ap.parse_args()

    j = Janus(a.url)
    await j.create()
    log(f"session {j.session} handle {j.handle}")

    # The first RTSP session sometimes gets no media and Janus reconnects after
    # rtsp_reconnect_delay (5 s): wait until the mountpoint reports fresh video.
    deadline = time.monotonic() + 20
    while True:
        data = (await j.message({"request": "info", "id": a.id}))["plugindata"]["data"]
        info = data.get("info", data)  # an unknown mountpoint gives {"error_code", "error"}
        ages = [m.get("age_ms") for m in info.get("media", []) if m.get("type") == "video"]
        if ages and ages[0] is not None and ages[0] < 1000:
            log(f"mountpoint {a.id} live (video age_ms={ages[0]})")
            break
        if time.monotonic() > deadline:
            log(f"mountpoint {a.id} has no media: {info}")
            return 1
        await asyncio.sleep(0.5)

    await j.message({"request": "watch", "id": a.id})  # -> "ack"; the offer comes as an event
    # No media on the mountpoint -> Janus cannot build the offer and sends *nothing*
    # (its log: "Cannot push event (JSON error: problem with the SDP)").
    offer = None
    while offer is None:
        try:
            evs = await j.poll(timeout=10)
        except TimeoutError:
            log("no offer from Janus 10 s after watch")
            return 1
        for ev in evs:
            if ev.get("janus") == "event" and "jsep" in ev:
                offer = ev["jsep"]
    if a.sdp_out:
        with open(a.sdp_out, "w") as f:
            f.write(offer["sdp"])

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    frames = 0
    done = asyncio.Event()

    @pc.on("track")
    def on_track(track):
        async def consume():
            nonlocal frames
            try:
                while True:
                    await track.recv()
                    frames += 1
            except Exception:
                pass
        asyncio.ensure_future(consume())

    @pc.on("connectionstatechange")
    def on_state():
        log(f"pc state {pc.connectionState}")
        if pc.connectionState in ("failed", "closed"):
            done.set()

    await pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], offer["type"]))
    await pc.setLocalDescription(await pc.createAnswer())  # gathers all candidates (no trickle)
    await j.message({"request": "start"},
                    {"type": "answer", "sdp": pc.localDescription.sdp})

    async def events():  # drain events (webrtcup, media, "started"...) and keep the session alive
        while True:
            for ev in await j.poll():
                log(f"event {ev.get('janus')}: {json.dumps(ev.get('plugindata', {}).get('data', ''))}")

    async def keepalive():  # session_timeout is 60 s; any request also refreshes it
        while True:
            await asyncio.sleep(25)
            await j.keepalive()

    bg = [asyncio.ensure_future(events()), asyncio.ensure_future(keepalive())]
    # count frames for a.seconds after the first one arrives (at most 15 s of waiting)
    t0 = time.monotonic()
    while frames == 0 and time.monotonic() - t0 < 15 and not done.is_set():
        await asyncio.sleep(0.05)
    if frames:
        log(f"first frame {time.monotonic() - t0:.2f}s after start")
        await asyncio.wait([asyncio.ensure_future(done.wait())], timeout=a.seconds)
    n = frames

    for t in bg:
        t.cancel()
    await pc.close()
    try:
        await j.post({"janus": "destroy"}, f"/{j.session}")
    except Exception as e:
        log(f"destroy: {e}")
    print(f"frames: {n}", flush=True)
    return 0 if n > 0 else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
