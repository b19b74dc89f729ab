#!/usr/bin/env python3
"""Meeting load benchmark: how large a meeting this machine holds, and what each forwarded
video stream costs the server.

For each N in --participants, N participants (examples/meeting_load.rs: the server's own
WebRTC library, each on its own UDP socket on 127.0.0.1) join one meeting through its guest
link for SECONDS. Each publishes a microphone (50 packets/s with an audio level) and a
camera at KBPS (with --simulcast: three layers, a quarter, half and all of KBPS, and tiles
of --tile-height px, so that the server picks the middle layer), and receives every other
participant's audio and at most 9 videos ("last N"). The script reports:
- the server's CPU (user + system from /proc over the middle of the run) and RSS;
- video streams forwarded (N x min(N - 1, 9)) and CPU per forwarded stream;
- the lowest received frame rate of any video slot of any participant over the run's last
  SECONDS - 5 s, against the 25 frames/s sent (the meeting holds when it is >= 90 %);
- added latency p50/p99 (a packet's send stamp to its arrival at another participant, in
  the one load process: server and both loopback hops).

The server runs pinned to CPU 0 and the load client to CPU 1 (--no-pin: not), so that the
load client does not take the server's core.

Usage: benches/meeting_load.py [--participants 4,8,12,16,20] [--seconds 20] [--kbps 600]
                               [--simulcast] [--tile-height 360]
Needs: cargo build --release --bin xaso --example meeting_load -p xaso
Prints a Markdown table.
"""
import argparse, json, os, signal, subprocess, sys, tempfile, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
XASO = os.path.join(ROOT, "target/release/xaso")
LOAD = os.path.join(ROOT, "target/release/examples/meeting_load")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from record_load import cpu_seconds, rss_kb, start_xaso  # noqa: E402


def pin(pid, cpu):
    subprocess.run(["taskset", "-a", "-pc", str(cpu), str(pid)], check=True, stdout=subprocess.DEVNULL)


def meeting(op, base, title):
    now = time.time()
    iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
    req = urllib.request.Request(
        base + "/api/meetings",
        data=json.dumps({"title": title, "start": iso(now), "end": iso(now + 3600)}).encode(),
        headers={"content-type": "application/json"})
    m = json.loads(op.open(req).read())
    token = m["join_url"].split("?t=")[1]
    return base.replace("http", "ws", 1) + f"/api/meetings/{m['id']}/ws?t={token}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--participants", default="4,8,12,16,20")
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--kbps", type=int, default=600)
    ap.add_argument("--simulcast", action="store_true")
    ap.add_argument("--tile-height", type=int, default=360)
    ap.add_argument("--no-pin", action="store_true")
    a = ap.parse_args()
    for exe in (XASO, LOAD):
        if not os.path.exists(exe):
            raise SystemExit(f"missing {exe}: build the release binaries first (see the docstring)")
    pin_load = () if a.no_pin else ("taskset", "-c", "1")
    work = tempfile.mkdtemp(prefix="xaso-meeting-bench-")
    cfg = os.path.join(work, "xaso.toml")
    with open(cfg, "w") as f:
        f.write("[recording]\nsimulated_camera = false\n")
    x, base, op = start_xaso(cfg, os.path.join(work, "data"))
    rows = []
    try:
        if not a.no_pin:
            pin(x.pid, 0)
        time.sleep(2)
        for n in [int(v) for v in a.participants.split(",")]:
            url = meeting(op, base, f"bench {n}")
            cmd = [*pin_load, LOAD, url, str(n), str(a.seconds), str(a.kbps)]
            if a.simulcast:
                cmd += ["--simulcast", "--tile-height", str(a.tile_height)]
            load = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            warm = min(8, a.seconds / 3)
            time.sleep(warm)
            c0, t0 = cpu_seconds(x.pid), time.time()
            time.sleep(a.seconds - warm - 3)
            c1, t1 = cpu_seconds(x.pid), time.time()
            rss = rss_kb(x.pid)
            out, err = load.communicate(timeout=a.seconds + 120)
            lines = out.strip().splitlines()
            if not lines:
                raise SystemExit(f"load client printed nothing: {err[-2000:]}")
            s = json.loads(lines[-1])
            busy = (c1 - c0) / (t1 - t0)
            streams = n * min(n - 1, 9)
            row = dict(n=n, busy=busy, rss_mb=rss / 1024, streams=streams,
                       per_stream=busy / streams if streams else 0.0, min_fps=s["min_fps"],
                       mean_fps=s["mean_fps"], p50=s["latency_ms"]["p50"], p99=s["latency_ms"]["p99"],
                       failed=len(s["failed"]), connected=s["connected"], holes=s["holes"])
            print(json.dumps(row), file=sys.stderr)
            rows.append(row)
            time.sleep(3)
    finally:
        x.send_signal(signal.SIGTERM)
        x.wait(timeout=60)
    mode = (f"simulcast (layers {a.kbps // 4}/{a.kbps // 2}/{a.kbps} kbit/s, tiles {a.tile_height} px high)"
            if a.simulcast else f"one {a.kbps} kbit/s layer")
    print(f"\nN participants, each publishing audio + 25 fps video ({mode}), receiving all audio and "
          f"at most 9 videos, {a.seconds} s each\n")
    print("| participants | video streams forwarded | xaso % of one core | per forwarded stream | RSS "
          "| lowest received fps (of 25) | mean | added latency p50 | p99 | failed |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['n']} | {r['streams']} | {100 * r['busy']:.1f} % | {100 * r['per_stream']:.2f} % "
              f"| {r['rss_mb']:.0f} MB | {r['min_fps']:.1f} | {r['mean_fps']:.1f} | {r['p50']:.2f} ms "
              f"| {r['p99']:.2f} ms | {r['failed']} |")


if __name__ == "__main__":
    main()
