#!/usr/bin/env python3
"""Live-view load benchmark: CPU per viewer-stream and forwarding latency of xaso.

One camera (xaso's Rust RTSP simulator looping its built-in 640x360 H.264 clip, the size of
a grid tile's sub-stream; its AAC audio is not forwarded) is recorded by `xaso serve`, and
N WHEP viewers (examples/whep_load.rs: str0m receivers, each checking order and payloads)
watch it for SECONDS, for each N in --viewers. For each N the script reports xaso's CPU (user
+ system from /proc over the middle of the run, minus the same window with no viewer), per
viewer-stream, and the server-added latency from xaso's /metrics histogram
`xaso_live_forward_seconds` (a camera frame handed to live view -> its last datagram sent
to every viewer): the bucket bounds under which 50 % and 99 % of frames fell.

Usage: benches/live_load.py [--viewers 1,10,50,100] [--seconds 30]
Needs: cargo build --release --bin xaso --example whep_load -p xaso
       cargo build --release -p xaso-simcam --example simcam
Everything runs on 127.0.0.1. Prints a Markdown table.
"""
import argparse, json, os, re, signal, subprocess, sys, tempfile, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
XASO = os.path.join(ROOT, "target/release/xaso")
LOAD = os.path.join(ROOT, "target/release/examples/whep_load")
SIMCAM = os.path.join(ROOT, "target/release/examples/simcam")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from record_load import cpu_seconds, start_xaso  # noqa: E402


def histogram(base):
    text = urllib.request.urlopen(base + "/metrics", timeout=10).read().decode()
    buckets = []
    for m in re.finditer(r'^xaso_live_forward_seconds_bucket\{le="([^"]+)"\} (\d+)$', text, re.M):
        buckets.append((float("inf") if m.group(1) == "+Inf" else float(m.group(1)), int(m.group(2))))
    return buckets


def quantile(before, after, q):
    counts = [(le, a - b) for (le, a), (_, b) in zip(after, before)]
    total = counts[-1][1] if counts else 0
    if total == 0:
        return None
    for le, c in counts:
        if c >= q * total:
            return le
    return float("inf")


def fmt_ms(s):
    return "n/a" if s is None else ("> 50 ms" if s == float("inf") else f"≤ {s * 1000:g} ms")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--viewers", default="1,10,50,100")
    ap.add_argument("--seconds", type=int, default=30)
    a = ap.parse_args()
    for exe in (XASO, LOAD, SIMCAM):
        if not os.path.exists(exe):
            raise SystemExit(f"missing {exe}: build the release binaries first (see the docstring)")
    work = tempfile.mkdtemp(prefix="xaso-live-bench-")
    sim = subprocess.Popen([SIMCAM, "127.0.0.1:0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    url = sim.stdout.readline().split()[1]
    cfg = os.path.join(work, "xaso.toml")
    with open(cfg, "w") as f:
        f.write(f'[recording]\nsimulated_camera = false\n\n[[camera]]\nname = "cam"\nurl = "{url}"\n')
    x, base, op = start_xaso(cfg, os.path.join(work, "data"))
    token = json.loads(op.open(urllib.request.Request(
        base + "/api/tokens", data=json.dumps({"user_id": 1, "name": "bench"}).encode(),
        headers={"content-type": "application/json"})).read())["token"]
    while json.loads(op.open(base + "/api/cameras/1/status").read())["state"] != "streaming":
        time.sleep(0.3)
    time.sleep(3)
    rows = []
    try:
        window = a.seconds - 6
        c0 = cpu_seconds(x.pid)
        time.sleep(window)
        idle = (cpu_seconds(x.pid) - c0) / window  # cores used with no viewer (recording)
        for n in [int(v) for v in a.viewers.split(",")]:
            load = subprocess.Popen([LOAD, base + "/api/cameras/1/whep", token, str(n), str(a.seconds)],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            time.sleep(4)
            h0, c0, t0 = histogram(base), cpu_seconds(x.pid), time.time()
            time.sleep(window)
            h1, c1, t1 = histogram(base), cpu_seconds(x.pid), time.time()
            out, err = load.communicate(timeout=a.seconds + 60)
            summary = json.loads(out.strip().splitlines()[-1])
            busy = (c1 - c0) / (t1 - t0)
            rows.append(dict(n=n, busy=busy, per=(busy - idle) / n, failed=summary["failed"],
                             p50=quantile(h0, h1, 0.5), p99=quantile(h0, h1, 0.99),
                             ttff=summary.get("first_frame_ms_p50")))
            time.sleep(2)
    finally:
        x.send_signal(signal.SIGTERM)
        x.wait(timeout=60)
        sim.send_signal(signal.SIGTERM)
        sim.wait(timeout=30)
    print(f"\none 640x360 H.264 camera (~0.7 Mbit/s), N viewers, {a.seconds} s each; xaso with no viewer: "
          f"{100 * idle:.2f} % of one core\n")
    print("| viewers | xaso % of one core | per viewer-stream | forwarding p50 | p99 | viewers failed | first frame p50 |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        ttff = "n/a" if r["ttff"] is None else f"{r['ttff']:.0f} ms"
        print(f"| {r['n']} | {100 * r['busy']:.1f} % | {100 * r['per']:.3f} % | {fmt_ms(r['p50'])} | {fmt_ms(r['p99'])} "
              f"| {r['failed']} | {ttff} |")


if __name__ == "__main__":
    main()
