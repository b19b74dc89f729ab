#!/usr/bin/env python3
"""Federation load benchmark: a tree of `xaso serve` nodes on this machine (a province, D
districts below it, C communes below each), a camera at every commune (xaso's RTSP
simulator looping a 640x360 H.264 clip), and live viewers of every commune camera at the
top, two links up, through the MSE WebSocket (the same relay serves WHEP).

Reported, over the middle of the run:
- bytes a second on each link (the node's own count of what it sent its parent) against
  the ideal: each stream someone above needs, once (a commune link: its camera; a district
  link: its communes' cameras). The stream's own rate is what a viewer at the commune got.
- the latency each hop adds: each commune camera is watched at the commune itself, at its
  district and at the top at once; the same frame (matched by the sequence of fragment
  sizes) arrives at the three; the differences of arrival are the added latency of one hop
  (district - commune) and of two (top - commune); p50 and p99 over all frames.
- CPU of each level's nodes (% of one core, user + system from /proc).

And at the same time, a meeting made at the top that invites every node, with one official
at each node (two at the first commune), each publishing a microphone and a simulcast
camera and receiving the others as a page does (last N = 9), all in one `meeting_load`
process so that every packet's added latency is measured on one clock:
- each link's bytes both ways against the ideal: the cameras as above, plus each meeting
  stream (publisher, layer) that someone beyond the link receives, once, at the rate a
  receiver got it (payload bytes: the ratio's excess over 1 is the framing);
- the latency a hop adds: for a commune's publisher, its p50 at a receiver on its own node
  (no link), at its district (one link) and at the top (two); the differences.
No peer of the field relays cameras or meetings across servers (LiveKit's open-source server
keeps a room on one node), so there is nothing to run beside it.

Usage: benches/federation_load.py [--districts 2] [--communes 4] [--viewers 2] [--seconds 20]
                                  [--no-meeting] [--kbps 600]
Needs: cargo build --release --bin xaso -p xaso; cargo build --release -p xaso-simcam --example simcam;
       cargo build --release --example meeting_load
Prints a Markdown table.
"""
import argparse, base64, json, os, socket, ssl, statistics, struct, subprocess, sys, tempfile, threading, time, \
    urllib.parse, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from record_load import SIMCAM, XASO, cpu_seconds, make_clip, start_simcam  # noqa: E402

MEETING_LOAD = os.path.join(ROOT, "target", "release", "examples", "meeting_load")

PW = "bench-password-1"
INSECURE = ssl.create_default_context()
INSECURE.check_hostname = False
INSECURE.verify_mode = ssl.CERT_NONE  # the nodes' self-signed certificates, on loopback


class Node:
    """One `xaso serve` (release build) with its data directory, its URL and the admin's
    session."""

    def __init__(self, work, name, tls, parent=None, token=None):
        self.dir = os.path.join(work, name)
        os.makedirs(self.dir)
        self.name = name
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("XASO_")}
        self.env.update({"XASO_ADMIN_PASSWORD": PW, "XASO_RECORDING__SIMULATED_CAMERA": "false"})
        if tls:
            self.env["XASO_TLS"] = "self-signed"
        if parent:
            self.env.update({"XASO_PARENT__URL": parent, "XASO_PARENT__TOKEN": token})
        self.proc = None

    def node_add(self, name, level):
        out = subprocess.run([XASO, "--data-dir", self.dir, "node", "add", name, "--level", level],
                             env={**self.env, "XASO_TLS": "self-signed"}, capture_output=True, text=True, check=True)
        return out.stdout.strip()

    def start(self):
        self.proc = subprocess.Popen([XASO, "--data-dir", self.dir, "serve", "--listen", "127.0.0.1:0"],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=self.env)
        self.url = None
        while self.url is None:
            line = self.proc.stdout.readline()
            if not line:
                raise SystemExit(f"{self.name} exited")
            if line.strip().startswith("Open:"):
                self.url = line.split()[1].rstrip("/")
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()
        self.cookie = None
        r = self.call("POST", "/api/login", {"username": "admin", "password": PW}, raw=True)
        self.cookie = r.headers["set-cookie"].split(";")[0]
        self.token = self.call("POST", "/api/tokens", {"user_id": 1, "name": "bench"})["token"]

    def call(self, method, path, body=None, raw=False):
        req = urllib.request.Request(self.url + path, method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"content-type": "application/json",
                                              **({"cookie": self.cookie} if self.cookie else {})})
        r = urllib.request.urlopen(req, context=INSECURE, timeout=30)
        return r if raw else json.loads(r.read() or b"null")

    def stop(self):
        if self.proc:
            self.proc.terminate()
            self.proc.wait(10)


def ws_frames(base, path, token):
    """The binary messages of a WebSocket (a minimal client: no fragmentation, as xaso
    sends), each as (arrival on the monotonic clock, payload)."""
    u = urllib.parse.urlparse(base)
    sock = socket.create_connection((u.hostname, u.port), 10)
    if u.scheme == "https":
        sock = INSECURE.wrap_socket(sock, server_hostname=u.hostname)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {u.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n").encode())
    buf = bytearray()
    while b"\r\n\r\n" not in buf:
        buf += sock.recv(4096)
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    if b" 101 " not in head.split(b"\r\n")[0]:
        raise SystemExit(f"{base}{path}: {head.splitlines()[0]!r}")
    buf = bytearray(rest)

    def need(n):
        while len(buf) < n:
            d = sock.recv(1 << 16)
            if not d:
                raise EOFError
            buf.extend(d)

    try:
        while True:
            need(2)
            op, ln, off = buf[0] & 0x0F, buf[1] & 0x7F, 2
            if ln == 126:
                need(4)
                ln, off = struct.unpack(">H", buf[2:4])[0], 4
            elif ln == 127:
                need(10)
                ln, off = struct.unpack(">Q", buf[2:10])[0], 10
            need(off + ln)
            payload = bytes(buf[off:off + ln])
            del buf[:off + ln]
            if op == 8:
                return
            if op == 2:
                yield time.monotonic(), payload
    finally:
        sock.close()


class Viewer(threading.Thread):
    """Watches one camera over MSE until `stop_at`: (arrival, fragment size) of each frame."""

    def __init__(self, node, camera, stop_at):
        super().__init__(daemon=True)
        self.node, self.camera, self.stop_at = node, camera, stop_at
        self.frames, self.error = [], None

    def run(self):
        try:
            for at, b in ws_frames(self.node.url, f"/api/cameras/{self.camera}/mse", self.node.token):
                if b"moof" in b[:96]:  # a fragment (after its prft box), not the init segment
                    self.frames.append((at, len(b)))
                if at >= self.stop_at:
                    return
        except Exception as e:  # noqa: BLE001 (reported below)
            self.error = repr(e)


def hop_delays(near, far):
    """Arrival differences of the same frames at two viewers, matched by the sequence of
    their fragment sizes (the same frame makes the same fragment at every node)."""
    sizes = [s for _, s in near]
    probe = [s for _, s in far[5:13]]
    for k in range(len(sizes) - len(probe)):
        if sizes[k:k + len(probe)] == probe:
            offset = k - 5
            return [fa - near[i + offset][0] for i, (fa, _) in enumerate(far)
                    if 0 <= i + offset < len(near) and near[i + offset][1] == far[i][1]]
    return []


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def pin_of(token):
    """The parent's key pin in a join token it issued (its last 32 bytes), in hex."""
    body = token.strip().removeprefix("xn1.")
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))[32:].hex()


def start_meeting(top, districts, communes, secs, kbps):
    """A meeting at the top inviting every node, and one `meeting_load` process with an
    official at each node (two at the first commune). Returns (process, labels)."""
    now = time.time()
    iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))  # noqa: E731
    paths = [d.name for d in districts] + [f"{c.district.name}/{c.name}" for c in communes]
    m = top.call("POST", "/api/meetings", {"title": "Giao ban toàn tỉnh", "start": iso(now - 60),
                                            "end": iso(now + 3600), "nodes": paths})
    urls = []
    for n in [top] + districts + communes + communes[:1]:
        deadline = time.time() + 20
        while True:
            found = [x for x in n.call("GET", "/api/meetings")["meetings"] if x["id"] == m["id"]]
            if found:
                break
            if time.time() > deadline:
                raise SystemExit(f"the meeting is not listed at {n.name}")
            time.sleep(0.2)
        token = found[0]["join_url"].split("?t=")[1]
        ws = n.url.replace("https://", "wss://").replace("http://", "ws://")
        pin = f"#sha256={n.pin}" if ws.startswith("wss") else ""
        urls.append(f"{n.name}={ws}/api/meetings/{m['id']}/ws?t={token}{pin}")
    proc = subprocess.Popen([MEETING_LOAD, ",".join(urls), "1", str(secs), str(kbps), "--simulcast"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    return proc


def meeting_figures(proc, top, districts, communes):
    """The meeting's figures, once its participants are done: table rows, and each link's
    ideal meeting bytes a second ((child name, "up"/"down") → bytes)."""
    out, _ = proc.communicate(timeout=120)
    per = None
    summary = None
    for line in out.splitlines():
        if line.startswith("{") and "per_participant" in line:
            per = json.loads(line)["per_participant"]
        elif line.startswith("{"):
            summary = json.loads(line)
    if per is None or summary is None:
        raise SystemExit(f"meeting_load printed no figures: {out[-2000:]}")
    bad = [p for p in per if "error" in p]
    if bad:
        raise SystemExit(f"meeting participants failed: {bad}")
    parent = {c.name: c.district.name for c in communes}
    parent.update({d.name: top.name for d in districts})
    node_of = {p["tag"]: p["label"] for p in per}

    def path_up(n):  # the node and its ancestors
        out = [n]
        while n in parent:
            n = parent[n]
            out.append(n)
        return out

    def links(a, b):  # the links (child node names) on the way from node a to node b
        up_a, up_b = path_up(a), path_up(b)
        common = next(x for x in up_a if x in up_b)
        return {(x, "up") for x in up_a[:up_a.index(common)]} | {(x, "down") for x in up_b[:up_b.index(common)]}

    # Each stream (publisher tag, layer) at the rate a receiver got it; where it crossed.
    rate, crossed = {}, {}
    for p in per:
        for tag, layer, bps in p["bytes_per_s"]:
            key = (tag, layer)
            rate[key] = max(rate.get(key, 0), bps)
            for ln in links(node_of[tag], p["label"]):
                crossed.setdefault(ln, set()).add(key)
    ideal = {(n.name, way): sum(rate[k] for k in crossed.get((n.name, way), ()))
             for n in [*districts, *communes] for way in ("up", "down")}
    def at(tag, node, k):  # p50 (k=1) or p99 (k=2) of a publisher's packets at a node's receivers
        xs = [x[k] for p in per if p["label"] == node and p["tag"] != tag for x in p["latency_ms"] if x[0] == tag]
        return statistics.mean(xs) if xs else None

    first = communes[0]
    depth = []  # per official of the first commune: (p50, p99) at its commune, district, top
    for tag in [p["tag"] for p in per if p["label"] == first.name]:
        row = [(at(tag, n, 1), at(tag, n, 2)) for n in (first.name, first.district.name, top.name)]
        if all(v[0] is not None for v in row):
            depth.append(row)
    hop1 = [r[1][0] - r[0][0] for r in depth]
    hop2 = [r[2][0] - r[0][0] for r in depth]
    fmt = lambda k: " / ".join(f"{statistics.mean(r[i][k] for r in depth):.2f}" for i in range(3))  # noqa: E731
    lat = summary.get("latency_ms", {})
    return [
        ("meeting", f"{len(per)} officials at {len(set(node_of.values()))} nodes, each a microphone and a "
                    f"simulcast camera; {summary.get('connected')} connected, mean {summary.get('mean_fps', 0):.1f} "
                    f"fps per received picture"),
        ("meeting, end to end (every receiver): p50 / p99", f"{lat.get('p50', 0):.2f} / {lat.get('p99', 0):.2f} ms"),
        ("meeting, a commune official's packets at its own commune / its district / the top: p50",
         f"{fmt(0)} ms" if depth else "n/a"),
        ("… p99", f"{fmt(1)} ms" if depth else "n/a"),
        ("meeting, added by one link / two links (p50)",
         f"{statistics.mean(hop1):.2f} / {statistics.mean(hop2):.2f} ms" if depth else "n/a"),
    ], ideal


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--districts", type=int, default=2)
    ap.add_argument("--communes", type=int, default=4, help="per district")
    ap.add_argument("--viewers", type=int, default=2, help="at the top, per commune camera")
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--no-meeting", action="store_true", help="cameras only")
    ap.add_argument("--kbps", type=int, default=600, help="each official's camera (three layers)")
    a = ap.parse_args()
    for b in (XASO, SIMCAM) + (() if a.no_meeting else (MEETING_LOAD,)):
        if not os.path.exists(b):
            raise SystemExit(f"missing {b}: see Needs in the docstring")
    work = tempfile.mkdtemp(prefix="xaso-fedbench-")
    clip = os.path.join(ROOT, "target", "fedbench-640x360.mp4")
    make_clip(clip, size="640x360", rate="1M", gop=25)
    nodes, cams = [], []
    try:
        top = Node(work, "tinh", tls=True)
        tokens = {f"huyen-{d}": top.node_add(f"huyen-{d}", "district") for d in range(a.districts)}
        top.pin = pin_of(next(iter(tokens.values())))
        top.start()
        nodes.append(top)
        districts, communes = [], []
        for d in range(a.districts):
            dn = Node(work, f"huyen-{d}", tls=True, parent=top.url, token=tokens[f"huyen-{d}"])
            ctoks = {f"xa-{d}-{c}": dn.node_add(f"xa-{d}-{c}", "commune") for c in range(a.communes)}
            dn.pin = pin_of(next(iter(ctoks.values())))
            dn.start()
            nodes.append(dn)
            districts.append(dn)
            for c in range(a.communes):
                cn = Node(work, f"xa-{d}-{c}", tls=False, parent=dn.url, token=ctoks[f"xa-{d}-{c}"])
                cn.start()
                nodes.append(cn)
                cam, url = start_simcam(clip)
                cams.append(cam)
                cn.local_id = cn.call("POST", "/api/cameras", {"name": "Cổng", "url": url, "record": False})["id"]
                cn.district = dn
                communes.append(cn)
        # Every commune camera listed at the top (and at its district), with its id there.
        deadline = time.time() + 60
        while True:
            at_top = {c["node"]: c["id"] for c in top.call("GET", "/api/cameras") if c.get("node")}
            if len(at_top) == len(communes):
                break
            if time.time() > deadline:
                raise SystemExit(f"the top lists {len(at_top)} of {len(communes)} commune cameras")
            time.sleep(0.5)
        for cn in communes:
            cn.top_id = at_top[f"{cn.district.name}/{cn.name}"]
            cn.district_id = {c["node"]: c["id"] for c in cn.district.call("GET", "/api/cameras")
                              if c.get("node")}[cn.name]

        warm, secs = 6, a.seconds
        meeting = None if a.no_meeting else start_meeting(top, districts, communes, warm + secs + 4, a.kbps)
        stop_at = time.monotonic() + warm + secs + 2
        viewers = []
        for cn in communes:
            cn.near = Viewer(cn, cn.local_id, stop_at)
            cn.mid = Viewer(cn.district, cn.district_id, stop_at)
            cn.far = [Viewer(top, cn.top_id, stop_at) for _ in range(a.viewers)]
            viewers += [cn.near, cn.mid, *cn.far]
        for v in viewers:
            v.start()
        time.sleep(warm)
        sent0 = {n.name: n.call("GET", "/api/nodes")["parent"]["bytes_sent"] for n in nodes[1:]}
        recv0 = {n.name: n.call("GET", "/api/nodes")["parent"]["bytes_received"] for n in nodes[1:]}
        cpu0 = {n.name: cpu_seconds(n.proc.pid) for n in nodes}
        t0 = time.monotonic()
        time.sleep(secs)
        el = time.monotonic() - t0
        views = {n.name: n.call("GET", "/api/nodes") for n in nodes}
        ups = {n.name: (views[n.name]["parent"]["bytes_sent"] - sent0[n.name]) / el for n in nodes[1:]}  # noqa: E501
        downs = {n.name: (views[n.name]["parent"]["bytes_received"] - recv0[n.name]) / el for n in nodes[1:]}
        cpu = {n.name: (cpu_seconds(n.proc.pid) - cpu0[n.name]) / el * 100 for n in nodes}
        for v in viewers:
            v.join(30)
            if v.error or not v.frames:
                raise SystemExit(f"a viewer of camera {v.camera} at {v.node.name} failed: "
                                 f"{v.error or 'no frame'}")

        def rate(v, lo, hi):  # bytes a second a viewer got between two monotonic times
            return sum(s for at, s in v.frames if lo <= at < hi) / (hi - lo)

        rows = []
        m_rows, m_ideal = meeting_figures(meeting, top, districts, communes) if meeting else ([], {})
        commune_ratio, district_ratio, down_ratio = [], [], []
        for cn in communes:
            cn.ideal = rate(cn.near, t0, t0 + el)
            commune_ratio.append(ups[cn.name] / (cn.ideal + m_ideal.get((cn.name, "up"), 0)))
        for dn in districts:
            ideal = sum(cn.ideal for cn in communes if cn.district is dn) + m_ideal.get((dn.name, "up"), 0)
            district_ratio.append(ups[dn.name] / ideal)
        for n in [*districts, *communes]:
            if m_ideal.get((n.name, "down")):
                down_ratio.append(downs[n.name] / m_ideal[(n.name, "down")])
        with_meeting = " and the meeting's streams someone above needs" if meeting else ""
        one, two = [], []
        for cn in communes:
            one += hop_delays(cn.near.frames, cn.mid.frames)
            for f in cn.far:
                two += hop_delays(cn.near.frames, f.frames)
        streams_top = sum(c["streams_received"] for c in views["tinh"]["children"])
        level_cpu = lambda ns: statistics.mean(cpu[n.name] for n in ns)  # noqa: E731
        rows.append(("tree", f"1 province, {a.districts} districts, {len(communes)} communes; "
                             f"{a.viewers} viewers of each commune camera at the top ({a.viewers * len(communes)} in all)"))
        rows.append(("a commune camera (MSE payload at the commune)",
                     f"{statistics.mean(cn.ideal for cn in communes) * 8 / 1e6:.2f} Mbit/s"))
        rows.append((f"commune links up: bytes sent / ideal (its camera{with_meeting}, once each)",
                     f"{min(commune_ratio):.3f}–{max(commune_ratio):.3f}"))
        rows.append((f"district links up: bytes sent / ideal (their communes' cameras{with_meeting}, once each)",
                     f"{min(district_ratio):.3f}–{max(district_ratio):.3f}"))
        if down_ratio:
            rows.append(("links down: bytes received / ideal (the meeting's streams someone below needs, once each)",
                         f"{min(down_ratio):.3f}–{max(down_ratio):.3f}"))
        rows.append(("streams received at the top (from its districts)", f"{streams_top} (ideal {len(communes)})"))
        rows.append(("added latency, one hop (district − commune): p50 / p99",
                     f"{pct(one, 0.5) * 1e3:.2f} / {pct(one, 0.99) * 1e3:.2f} ms ({len(one)} frames)"))
        rows.append(("added latency, two hops (top − commune): p50 / p99",
                     f"{pct(two, 0.5) * 1e3:.2f} / {pct(two, 0.99) * 1e3:.2f} ms ({len(two)} frames)"))
        rows.append(("CPU, % of a core: province / district (mean) / commune (mean)",
                     f"{cpu['tinh']:.1f} / {level_cpu(districts):.1f} / {level_cpu(communes):.1f}"))
        rows += m_rows
        print(f"\nFederation load, {secs} s measured after {warm} s warm-up, release build:\n")
        print("| what | figure |\n| --- | --- |")
        for k, v in rows:
            print(f"| {k} | {v} |")
    finally:
        for n in reversed(nodes):
            n.stop()
        for c in cams:
            c.terminate()
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
