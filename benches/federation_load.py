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
No peer of the field relays cameras across servers, so there is nothing to run beside it.
Meetings across levels are not built yet: this covers cameras only.

Usage: benches/federation_load.py [--districts 2] [--communes 4] [--viewers 2] [--seconds 20]
Needs: cargo build --release --bin xaso -p xaso; cargo build --release -p xaso-simcam --example simcam
Prints a Markdown table.
"""
import argparse, base64, json, os, socket, ssl, statistics, struct, subprocess, sys, tempfile, threading, time, \
    urllib.parse, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from record_load import SIMCAM, XASO, cpu_seconds, make_clip, start_simcam  # noqa: E402

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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--districts", type=int, default=2)
    ap.add_argument("--communes", type=int, default=4, help="per district")
    ap.add_argument("--viewers", type=int, default=2, help="at the top, per commune camera")
    ap.add_argument("--seconds", type=int, default=20)
    a = ap.parse_args()
    for b in (XASO, SIMCAM):
        if not os.path.exists(b):
            raise SystemExit(f"missing {b}: see Needs in the docstring")
    work = tempfile.mkdtemp(prefix="xaso-fedbench-")
    clip = os.path.join(ROOT, "target", "fedbench-640x360.mp4")
    make_clip(clip, size="640x360", rate="1M", gop=25)
    nodes, cams = [], []
    try:
        top = Node(work, "tinh", tls=True)
        tokens = {f"huyen-{d}": top.node_add(f"huyen-{d}", "district") for d in range(a.districts)}
        top.start()
        nodes.append(top)
        districts, communes = [], []
        for d in range(a.districts):
            dn = Node(work, f"huyen-{d}", tls=True, parent=top.url, token=tokens[f"huyen-{d}"])
            ctoks = {f"xa-{d}-{c}": dn.node_add(f"xa-{d}-{c}", "commune") for c in range(a.communes)}
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
        cpu0 = {n.name: cpu_seconds(n.proc.pid) for n in nodes}
        t0 = time.monotonic()
        time.sleep(secs)
        el = time.monotonic() - t0
        views = {n.name: n.call("GET", "/api/nodes") for n in nodes}
        cpu = {n.name: (cpu_seconds(n.proc.pid) - cpu0[n.name]) / el * 100 for n in nodes}
        for v in viewers:
            v.join(30)
            if v.error or not v.frames:
                raise SystemExit(f"a viewer of camera {v.camera} at {v.node.name} failed: "
                                 f"{v.error or 'no frame'}")

        def rate(v, lo, hi):  # bytes a second a viewer got between two monotonic times
            return sum(s for at, s in v.frames if lo <= at < hi) / (hi - lo)

        rows = []
        commune_ratio, district_ratio = [], []
        for cn in communes:
            sent = (views[cn.name]["parent"]["bytes_sent"] - sent0[cn.name]) / el
            ideal = rate(cn.near, t0, t0 + el)
            cn.ideal = ideal
            commune_ratio.append(sent / ideal)
        for dn in districts:
            sent = (views[dn.name]["parent"]["bytes_sent"] - sent0[dn.name]) / el
            ideal = sum(cn.ideal for cn in communes if cn.district is dn)
            district_ratio.append(sent / ideal)
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
        rows.append(("commune links: bytes sent / ideal (one stream)",
                     f"{min(commune_ratio):.3f}–{max(commune_ratio):.3f}"))
        rows.append(("district links: bytes sent / ideal (their communes' streams, once each)",
                     f"{min(district_ratio):.3f}–{max(district_ratio):.3f}"))
        rows.append(("streams received at the top (from its districts)", f"{streams_top} (ideal {len(communes)})"))
        rows.append(("added latency, one hop (district − commune): p50 / p99",
                     f"{pct(one, 0.5) * 1e3:.2f} / {pct(one, 0.99) * 1e3:.2f} ms ({len(one)} frames)"))
        rows.append(("added latency, two hops (top − commune): p50 / p99",
                     f"{pct(two, 0.5) * 1e3:.2f} / {pct(two, 0.99) * 1e3:.2f} ms ({len(two)} frames)"))
        rows.append(("CPU, % of a core: province / district (mean) / commune (mean)",
                     f"{cpu['tinh']:.1f} / {level_cpu(districts):.1f} / {level_cpu(communes):.1f}"))
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
