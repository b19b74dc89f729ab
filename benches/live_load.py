#!/usr/bin/env python3
"""Live-view load benchmark: CPU per viewer-stream and forwarding latency of xaso, side by
side in the same run with Janus 1.1.2's streaming plugin (with --janus).

One camera (xaso's Rust RTSP simulator looping its built-in 640x360 H.264 clip, the size of
a grid tile's sub-stream; its AAC audio is forwarded by neither) is pulled by `xaso serve`
(which also records it) and, with --janus, by Janus (benches/janus/env.sh: Janus in a network
namespace of its own, the camera and the viewers on 127.0.0.3). For each N in --viewers, N
viewers watch it for SECONDS, first from xaso (examples/whep_load.rs), then from Janus
(examples/janus_load.rs): the same str0m receiver and checks (order, payloads) for both.
Each server's CPU (user + system from /proc over the middle of the run) minus its CPU with
no viewer, divided by N, is its cost per viewer-stream. For xaso the script also reports the
server-added latency from the /metrics histogram `xaso_live_forward_seconds` (a camera frame
handed to live view -> its last datagram sent to every viewer): the bucket bounds under
which 50 % and 99 % of frames fell.

The servers run pinned to CPU 0, the camera and the load client to CPU 1 (--no-pin: not),
so that the load client does not take the server's core.

Usage: benches/live_load.py [--viewers 1,10,50,100,200] [--seconds 20] [--janus] [--rounds R]
Needs: cargo build --release --bin xaso --example whep_load --example janus_load -p xaso
       cargo build --release -p xaso-simcam --example simcam
       --janus: root (network namespace), Debian's janus (env.sh installs it)
Prints a Markdown table.
"""
import argparse, json, os, re, signal, subprocess, sys, tempfile, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
XASO = os.path.join(ROOT, "target/release/xaso")
LOAD = os.path.join(ROOT, "target/release/examples/whep_load")
JLOAD = os.path.join(ROOT, "target/release/examples/janus_load")
SIMCAM = os.path.join(ROOT, "target/release/examples/simcam")
JANUS_ENV = os.path.join(ROOT, "benches/janus/env.sh")
JANUS_API = "http://127.0.0.2:8088"
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


def pin(pid, cpu):
    subprocess.run(["taskset", "-a", "-pc", str(cpu), str(pid)], check=True, stdout=subprocess.DEVNULL)


def janus_event_loops_option(ap):
    """--janus-event-loops N: Janus's event_loops (benches/janus/env.sh writes it)."""
    ap.add_argument("--janus-event-loops", type=int, default=None, metavar="N",
                    help="Janus's event_loops: its PeerConnections share N loop threads (Janus's "
                         "default, without this: one thread each)")


def use_janus_event_loops(a):
    """Passes --janus-event-loops to benches/janus/env.sh (JANUS_EVENT_LOOPS)."""
    if a.janus_event_loops is not None:
        os.environ["JANUS_EVENT_LOOPS"] = str(a.janus_event_loops)


def idle_cpu(pid, seconds):
    c0 = cpu_seconds(pid)
    time.sleep(seconds)
    return (cpu_seconds(pid) - c0) / seconds


def load_run(pid, cmd, n, seconds, base=None, prefix=()):
    """Runs one load of n viewers; returns the server's busy cores and the load's summary
    (and, with base, the latency histogram before and after)."""
    load = subprocess.Popen([*prefix, *cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(min(8, seconds / 3))
    h0 = histogram(base) if base else None
    c0, t0 = cpu_seconds(pid), time.time()
    time.sleep(seconds - min(8, seconds / 3) - 3)
    h1 = histogram(base) if base else None
    c1, t1 = cpu_seconds(pid), time.time()
    out, err = load.communicate(timeout=seconds + 90)
    lines = out.strip().splitlines()
    if not lines:
        raise SystemExit(f"load client printed nothing: {err[-2000:]}")
    summary = json.loads(lines[-1])
    return (c1 - c0) / (t1 - t0), summary, h0, h1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--viewers", default="1,10,50,100,200")
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--janus", action="store_true", help="measure Janus 1.1.2 side by side")
    janus_event_loops_option(ap)
    ap.add_argument("--no-pin", action="store_true")
    ap.add_argument("--rounds", type=int, default=1,
                    help="measure every N this many times (xaso and Janus in turn) and report medians")
    a = ap.parse_args()
    use_janus_event_loops(a)
    for exe in (XASO, LOAD, SIMCAM) + ((JLOAD,) if a.janus else ()):
        if not os.path.exists(exe):
            raise SystemExit(f"missing {exe}: build the release binaries first (see the docstring)")
    pin_load = () if a.no_pin else ("taskset", "-c", "1")
    work = tempfile.mkdtemp(prefix="xaso-live-bench-")
    cam_ip = "127.0.0.1"
    if a.janus:
        subprocess.run(["bash", JANUS_ENV, "up"], check=True)
        cam_ip = "127.0.0.3"  # reachable from Janus's namespace and from xaso
    sim = subprocess.Popen([*pin_load, SIMCAM, f"{cam_ip}:0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    url = sim.stdout.readline().split()[1]
    cfg = os.path.join(work, "xaso.toml")
    with open(cfg, "w") as f:
        f.write(f'[recording]\nsimulated_camera = false\n\n[[camera]]\nname = "cam"\nurl = "{url}"\n')
    x, base, op = start_xaso(cfg, os.path.join(work, "data"))
    janus_pid = None
    rows = []
    try:
        if not a.no_pin:
            pin(x.pid, 0)
        token = json.loads(op.open(urllib.request.Request(
            base + "/api/tokens", data=json.dumps({"user_id": 1, "name": "bench"}).encode(),
            headers={"content-type": "application/json"})).read())["token"]
        while json.loads(op.open(base + "/api/cameras/1/status").read())["state"] != "streaming":
            time.sleep(0.3)
        if a.janus:
            subprocess.run(["bash", JANUS_ENV, "start", url], check=True, stdout=subprocess.DEVNULL)
            with open("/tmp/xaso-janus/janus.pid") as f:
                janus_pid = int(f.read())
            if not a.no_pin:
                pin(janus_pid, 0)
        time.sleep(3)
        window = max(10, a.seconds - 6)
        idle = idle_cpu(x.pid, window)  # cores used with no viewer (recording)
        jidle = idle_cpu(janus_pid, window) if janus_pid else None
        samples = {}
        for r in range(a.rounds):
            for n in [int(v) for v in a.viewers.split(",")]:
                busy, summary, h0, h1 = load_run(
                    x.pid, [LOAD, base + "/api/cameras/1/whep", token, str(n), str(a.seconds)], n, a.seconds, base, pin_load)
                row = dict(n=n, busy=busy, per=(busy - idle) / n, failed=summary["failed"],
                           p50=quantile(h0, h1, 0.5), p99=quantile(h0, h1, 0.99),
                           ttff=summary.get("first_frame_ms_p50"))
                time.sleep(2)
                if janus_pid:
                    jbusy, jsum, _, _ = load_run(
                        janus_pid, [JLOAD, JANUS_API, "1", cam_ip, str(n), str(a.seconds)], n, a.seconds, None, pin_load)
                    row.update(jbusy=jbusy, jper=(jbusy - jidle) / n, jfailed=jsum["failed"])
                    row["ratio"] = row["per"] / row["jper"] if row["jper"] > 0 else float("nan")
                    time.sleep(2)
                samples.setdefault(n, []).append(row)
                print(f"round {r + 1}: " + json.dumps(row, default=str), file=sys.stderr)
        for n, rs in samples.items():
            # The median round by xaso's cost (its latency and failures with it); for Janus
            # its own median; the ratio is the median of the rounds' ratios.
            rs_sorted = sorted(rs, key=lambda r: r["per"])
            row = dict(rs_sorted[len(rs) // 2])
            if janus_pid:
                for k in ("jbusy", "jper", "ratio"):
                    row[k] = sorted(r[k] for r in rs)[len(rs) // 2]
                row["jfailed"] = max(r["jfailed"] for r in rs)
                row["ratios"] = [round(r["ratio"], 2) for r in rs]
            row["failed"] = max(r["failed"] for r in rs)
            rows.append(row)
    finally:
        x.send_signal(signal.SIGTERM)
        x.wait(timeout=60)
        if a.janus:
            subprocess.run(["bash", JANUS_ENV, "stop"])
        sim.send_signal(signal.SIGTERM)
        sim.wait(timeout=30)
    print(f"\none 640x360 H.264 camera (~0.7 Mbit/s), N viewers, {a.seconds} s each, {a.rounds} round(s) (medians); with no viewer: "
          f"xaso {100 * idle:.2f} % of one core (it also records)"
          + (f", Janus {100 * jidle:.2f} %" if jidle is not None else "")
          + (f"; Janus with event_loops = {a.janus_event_loops}" if a.janus and a.janus_event_loops else "")
          + "\n")
    if a.janus:
        print("| viewers | xaso % of one core | per viewer-stream | Janus % of one core | per viewer-stream "
              "| xaso / Janus per viewer (rounds) | forwarding p50 | p99 | viewers failed (xaso, Janus) |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for r in rows:
            rounds = ", ".join(f"{v:.2f}" for v in r["ratios"])
            print(f"| {r['n']} | {100 * r['busy']:.1f} % | {100 * r['per']:.3f} % | {100 * r['jbusy']:.1f} % "
                  f"| {100 * r['jper']:.3f} % | {r['ratio']:.2f} ({rounds}) | {fmt_ms(r['p50'])} | {fmt_ms(r['p99'])} "
                  f"| {r['failed']}, {r['jfailed']} |")
        return
    print("| viewers | xaso % of one core | per viewer-stream | forwarding p50 | p99 | viewers failed | first frame p50 |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        ttff = "n/a" if r["ttff"] is None else f"{r['ttff']:.0f} ms"
        print(f"| {r['n']} | {100 * r['busy']:.1f} % | {100 * r['per']:.3f} % | {fmt_ms(r['p50'])} | {fmt_ms(r['p99'])} "
              f"| {r['failed']} | {ttff} |")


if __name__ == "__main__":
    main()
