#!/usr/bin/env python3
"""Meeting load benchmark: how large a meeting this machine holds, what each forwarded video
stream costs the server, and (with --janus) the same against Janus 1.1.2's videoroom plugin.

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

With --janus, each N is then run against Janus (benches/janus/env.sh: Debian's janus in a
network namespace of its own) by examples/janus_meeting_load.rs: the same participants and
media in one videoroom room, each publishing through a publisher handle and receiving, through
one subscriber handle, what xaso sends it: the next min(N - 1, 9) participants' video and
every other participant's audio. The table
gives both servers' CPU for the same load and the ratio of their streams per core. With
--rounds R every N is measured R times, xaso and Janus in turn, and the medians reported.

xaso is configured as the load is: `[meetings] simulcast = true` with --simulcast (each
participant gets a bandwidth estimate, whose pacer spreads what it is sent), false without
(no estimate: nothing to choose; Janus makes none either). --estimate keeps it on for a
one-layer load, to show what the estimate costs.

The servers run pinned to CPU 0 and the load clients to CPU 1 (--no-pin: not), so that a
load client does not take the server's core.

Usage: benches/meeting_load.py [--participants 4,8,12,16,20] [--seconds 20] [--kbps 600]
                               [--simulcast] [--tile-height 360] [--janus] [--estimate] [--rounds R]
Needs: cargo build --release --bin xaso --example meeting_load --example janus_meeting_load -p xaso
       --janus: root (network namespace), Debian's janus (env.sh installs it)
Prints a Markdown table.
"""
import argparse, json, os, signal, subprocess, sys, tempfile, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
XASO = os.path.join(ROOT, "target/release/xaso")
LOAD = os.path.join(ROOT, "target/release/examples/meeting_load")
JLOAD = os.path.join(ROOT, "target/release/examples/janus_meeting_load")
JANUS_ENV = os.path.join(ROOT, "benches/janus/env.sh")
JANUS_API = "http://127.0.0.2:8088"
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from record_load import rss_kb, start_xaso  # noqa: E402
from live_load import idle_cpu, janus_event_loops_option, load_run, pin, use_janus_event_loops  # noqa: E402


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


def median(rows, key):
    v = sorted(r[key] for r in rows)
    return v[len(v) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--participants", default="4,8,12,16,20")
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--kbps", type=int, default=600)
    ap.add_argument("--simulcast", action="store_true")
    ap.add_argument("--tile-height", type=int, default=360)
    ap.add_argument("--janus", action="store_true", help="measure Janus 1.1.2's videoroom side by side")
    janus_event_loops_option(ap)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--estimate", action="store_true",
                    help="one layer, but xaso configured for simulcast (bandwidth estimate and pacer on)")
    ap.add_argument("--no-pin", action="store_true")
    a = ap.parse_args()
    use_janus_event_loops(a)
    if a.janus and a.simulcast:
        raise SystemExit("--janus compares one layer per camera: drop --simulcast")
    for exe in (XASO, LOAD) + ((JLOAD,) if a.janus else ()):
        if not os.path.exists(exe):
            raise SystemExit(f"missing {exe}: build the release binaries first (see the docstring)")
    pin_load = () if a.no_pin else ("taskset", "-c", "1")
    work = tempfile.mkdtemp(prefix="xaso-meeting-bench-")
    cfg = os.path.join(work, "xaso.toml")
    with open(cfg, "w") as f:
        # Without simulcast the server makes no bandwidth estimate (nothing to choose).
        simulcast = "true" if a.simulcast or a.estimate else "false"
        f.write(f"[recording]\nsimulated_camera = false\n\n[meetings]\nsimulcast = {simulcast}\n")
    x, base, op = start_xaso(cfg, os.path.join(work, "data"))
    janus_pid = None
    samples = {}
    room = 1000
    try:
        if not a.no_pin:
            pin(x.pid, 0)
        if a.janus:
            subprocess.run(["bash", JANUS_ENV, "up"], check=True)
            subprocess.run(["bash", JANUS_ENV, "start"], check=True, stdout=subprocess.DEVNULL)
            with open("/tmp/xaso-janus/janus.pid") as f:
                janus_pid = int(f.read())
            if not a.no_pin:
                pin(janus_pid, 0)
        time.sleep(2)
        idle = idle_cpu(x.pid, 5)
        jidle = idle_cpu(janus_pid, 5) if janus_pid else None
        for r in range(a.rounds):
            for n in [int(v) for v in a.participants.split(",")]:
                url = meeting(op, base, f"bench {n}")
                cmd = [LOAD, url, str(n), str(a.seconds), str(a.kbps)]
                if a.simulcast:
                    cmd += ["--simulcast", "--tile-height", str(a.tile_height)]
                busy, s, _, _ = load_run(x.pid, cmd, n, a.seconds, None, pin_load)
                streams = n * min(n - 1, 9)
                row = dict(n=n, busy=busy, rss_mb=rss_kb(x.pid) / 1024, streams=streams,
                           per_stream=busy / streams if streams else 0.0, min_fps=s["min_fps"],
                           mean_fps=s["mean_fps"], p50=s["latency_ms"]["p50"], p99=s["latency_ms"]["p99"],
                           failed=len(s["failed"]), connected=s["connected"], holes=s["holes"])
                time.sleep(3)
                if janus_pid:
                    room += 1
                    jcmd = [JLOAD, JANUS_API, str(room), "127.0.0.3", str(n), str(a.seconds), str(a.kbps)]
                    jbusy, js, _, _ = load_run(janus_pid, jcmd, n, a.seconds, None, pin_load)
                    row.update(jbusy=jbusy, jrss_mb=rss_kb(janus_pid) / 1024,
                               jper_stream=jbusy / streams if streams else 0.0,
                               jmin_fps=js["min_fps"], jmean_fps=js["mean_fps"],
                               jp50=js["latency_ms"]["p50"], jp99=js["latency_ms"]["p99"],
                               jfailed=len(js["failed"]), jholes=js["holes"])
                    row["ratio"] = jbusy / busy if busy > 0 else float("nan")
                    time.sleep(3)
                print(f"round {r + 1}: " + json.dumps(row), file=sys.stderr)
                samples.setdefault(n, []).append(row)
    finally:
        x.send_signal(signal.SIGTERM)
        x.wait(timeout=60)
        if a.janus:
            subprocess.run(["bash", JANUS_ENV, "stop"])
    # Per N: every figure's median over the rounds (each round's ratio listed too).
    rows = []
    for n, rs in samples.items():
        row = {k: median(rs, k) for k in rs[0] if isinstance(rs[0][k], (int, float))}
        row["ratios"] = [r.get("ratio") for r in rs]
        rows.append(row)
    mode = (f"simulcast (layers {a.kbps // 4}/{a.kbps // 2}/{a.kbps} kbit/s, tiles {a.tile_height} px high)"
            if a.simulcast else f"one {a.kbps} kbit/s layer"
            + (", xaso with its bandwidth estimate on" if a.estimate else ", xaso configured without simulcast"))
    print(f"\nN participants, each publishing audio + 25 fps video ({mode}), receiving all audio and "
          f"at most 9 videos, {a.seconds} s each, {a.rounds} round(s) (medians); idle: xaso "
          f"{100 * idle:.2f} % of one core" + (f", Janus {100 * jidle:.2f} %" if jidle is not None else "")
          + (f"; Janus with event_loops = {a.janus_event_loops}" if a.janus and a.janus_event_loops else "")
          + "\n")
    if a.janus:
        print("| participants | video streams forwarded | xaso % of one core | Janus % of one core "
              "| xaso streams per core / Janus's (rounds) | lowest fps xaso, Janus (of 25) "
              "| added latency p99 xaso, Janus | p50 xaso, Janus | RSS xaso, Janus | failed |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for r in rows:
            rounds = ", ".join(f"{v:.2f}" for v in r["ratios"])
            print(f"| {r['n']} | {r['streams']} | {100 * r['busy']:.1f} % | {100 * r['jbusy']:.1f} % "
                  f"| {r['ratio']:.2f}× ({rounds}) | {r['min_fps']:.1f}, {r['jmin_fps']:.1f} "
                  f"| {r['p99']:.2f} ms, {r['jp99']:.2f} ms | {r['p50']:.2f} ms, {r['jp50']:.2f} ms "
                  f"| {r['rss_mb']:.0f} MB, {r['jrss_mb']:.0f} MB | {r['failed']}, {r['jfailed']} |")
        return
    print("| participants | video streams forwarded | xaso % of one core | per forwarded stream | RSS "
          "| lowest received fps (of 25) | mean | added latency p50 | p99 | failed |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['n']} | {r['streams']} | {100 * r['busy']:.1f} % | {100 * r['per_stream']:.2f} % "
              f"| {r['rss_mb']:.0f} MB | {r['min_fps']:.1f} | {r['mean_fps']:.1f} | {r['p50']:.2f} ms "
              f"| {r['p99']:.2f} ms | {r['failed']} |")


if __name__ == "__main__":
    main()
