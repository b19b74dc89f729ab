#!/usr/bin/env python3
"""Recording load benchmark: xaso against one `ffmpeg -c copy -f segment` per camera.

N simulated cameras at about 4 Mbit/s (a pre-encoded 1080p25 H.264 clip, no audio, served
by xaso's Rust RTSP simulator, which costs little CPU) are recorded for SECONDS by
  1. xaso (release build), then
  2. N ffmpeg processes (the usual way people record),
one after the other in the same run, on the same source. For each it reports CPU seconds
per stream-hour (user+system from /proc), CPU % of one core per stream, RSS per camera,
and frames received vs expected (xaso also reports frames dropped).

Usage: benches/record_load.py [--cameras N] [--seconds S] [--skip-ffmpeg]
Needs: cargo build --release --bin xaso && cargo build --release -p xaso-simcam --example simcam
       ffmpeg (Debian). Everything runs on 127.0.0.1. Prints a Markdown table.
"""
import argparse, json, os, shutil, signal, subprocess, sys, tempfile, time, urllib.request, http.cookiejar

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
XASO = os.path.join(ROOT, "target/release/xaso")
SIMCAM = os.path.join(ROOT, "target/release/examples/simcam")
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def make_clip(path):
    if os.path.exists(path):
        return
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=25",
                    "-t", "20", "-c:v", "libx264", "-preset", "veryfast", "-b:v", "4M", "-maxrate", "4M",
                    "-bufsize", "4M", "-g", "50", "-bf", "0", "-pix_fmt", "yuv420p", "-movflags", "+faststart",
                    path], check=True)


def start_simcam(clip):
    p = subprocess.Popen([SIMCAM, "127.0.0.1:0", clip], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = p.stdout.readline().strip()
    assert line.startswith("READY "), line
    return p, line.split()[1]


def xaso_run(n, secs, url, work):
    data = os.path.join(work, "xaso")
    os.makedirs(data)
    cfg = os.path.join(work, "xaso.toml")
    with open(cfg, "w") as f:
        f.write("[recording]\nsegment_secs = 60\nsimulated_camera = false\nkeep_free_gb = 0.0\n")
        for i in range(n):
            f.write(f'\n[[camera]]\nname = "cam{i}"\nurl = "{url}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("XASO_")}
    env["XASO_ADMIN_PASSWORD"] = "bench-password-1"
    p = subprocess.Popen([XASO, "--config", cfg, "--data-dir", data, "serve", "--listen", "127.0.0.1:0"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    base = None
    while base is None:
        line = p.stdout.readline()
        if not line:
            raise SystemExit("xaso exited")
        if line.strip().startswith("Open:"):
            base = line.split()[1].rstrip("/")
    jar = http.cookiejar.CookieJar()
    op = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    req = urllib.request.Request(base + "/api/login", data=json.dumps({"username": "admin", "password": "bench-password-1"}).encode(),
                                 headers={"content-type": "application/json"})
    op.open(req).read()

    def statuses():
        return [json.loads(op.open(f"{base}/api/cameras/{i + 1}/status").read()) for i in range(n)]

    deadline = time.time() + 60
    while not all(s["recording"] for s in statuses()):
        if time.time() > deadline:
            raise SystemExit("not every camera started recording within 60 s")
        time.sleep(0.5)
    time.sleep(5)  # warm-up
    s0 = statuses()
    c0, t0 = cpu_seconds(p.pid), time.time()
    time.sleep(secs)
    c1, t1 = cpu_seconds(p.pid), time.time()
    s1 = statuses()
    rss = rss_kb(p.pid)
    metrics = op.open(base + "/metrics").read().decode()
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=60)
    # What reached the disk: frames recorded per second of recorded time, per camera (the
    # clip is 25 fps, so 25.0 means nothing was lost between camera and disk).
    import sqlite3
    db = sqlite3.connect(os.path.join(data, "xaso.db"))
    per_cam = db.execute("SELECT camera_id, SUM(video_samples), SUM(end_ms - start_ms), COUNT(*) FROM segments GROUP BY camera_id").fetchall()
    db.close()
    fps = [v * 1000 / ms for _, v, ms, _ in per_cam if ms]
    recorded = dict(cameras=len(per_cam), fps_min=min(fps), fps_max=max(fps), frames=sum(v for _, v, _, _ in per_cam),
                    seconds=sum(ms for _, _, ms, _ in per_cam) / 1000)
    frames = sum(b["frames_received"] - a["frames_received"] for a, b in zip(s0, s1))
    dropped = sum(b["frames_dropped"] for b in s1)
    dropped_total = next((int(float(l.split()[1])) for l in metrics.splitlines() if l.startswith("xaso_frames_dropped_total ")), 0)
    return dict(cpu=c1 - c0, wall=t1 - t0, rss_kb=rss, frames=frames, dropped=max(dropped, dropped_total), recorded=recorded)


def ffmpeg_run(n, secs, url, work):
    procs = []
    for i in range(n):
        d = os.path.join(work, f"ff{i}")
        os.makedirs(d)
        procs.append(subprocess.Popen(["ffmpeg", "-nostdin", "-v", "error", "-rtsp_transport", "tcp", "-i", url, "-c", "copy",
                                       "-f", "segment", "-segment_time", "60", "-reset_timestamps", "1",
                                       os.path.join(d, "%05d.mp4")], stderr=subprocess.DEVNULL))
    time.sleep(8)  # connect + warm-up
    c0, t0 = sum(cpu_seconds(p.pid) for p in procs), time.time()
    time.sleep(secs)
    c1, t1 = sum(cpu_seconds(p.pid) for p in procs), time.time()
    rss = sum(rss_kb(p.pid) for p in procs)
    for p in procs:
        p.send_signal(signal.SIGINT)
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
    return dict(cpu=c1 - c0, wall=t1 - t0, rss_kb=rss, frames=None, dropped=None)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cameras", type=int, default=20)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--skip-ffmpeg", action="store_true")
    a = ap.parse_args()
    for exe in (XASO, SIMCAM):
        if not os.path.exists(exe):
            raise SystemExit(f"missing {exe}: build the release binaries first (see the docstring)")
    cache = os.path.join(ROOT, "target/bench")
    os.makedirs(cache, exist_ok=True)
    clip = os.path.join(cache, "clip-1080p25-4mbit.mp4")
    make_clip(clip)
    work = tempfile.mkdtemp(prefix="xaso-bench-", dir=os.environ.get("BENCH_DIR"))
    sim, url = start_simcam(clip)
    rows = []
    try:
        sc0 = cpu_seconds(sim.pid)
        x = xaso_run(a.cameras, a.seconds, url, work)
        x["source_cpu"] = cpu_seconds(sim.pid) - sc0
        rows.append(("xaso", x))
        shutil.rmtree(os.path.join(work, "xaso"), ignore_errors=True)
        if not a.skip_ffmpeg:
            sc0 = cpu_seconds(sim.pid)
            f = ffmpeg_run(a.cameras, a.seconds, url, work)
            f["source_cpu"] = cpu_seconds(sim.pid) - sc0
            rows.append(("ffmpeg -c copy -f segment (one per camera)", f))
    finally:
        sim.send_signal(signal.SIGTERM)
        sim.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    n, secs = a.cameras, a.seconds
    print(f"\n{n} cameras, 1080p25 H.264 at 4 Mbit/s, measured over {secs} s each (after warm-up)\n")
    print("| recorder | CPU s per stream-hour | % of one core per stream | RSS per camera | frames received | dropped |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, r in rows:
        per_hour = r["cpu"] / (n * r["wall"] / 3600)
        pct = 100 * r["cpu"] / r["wall"] / n
        rss = r["rss_kb"] / n / 1024
        frames = "n/a" if r["frames"] is None else str(r["frames"])
        dropped = "n/a" if r["dropped"] is None else str(r["dropped"])
        print(f"| {name} | {per_hour:.1f} | {pct:.2f} % | {rss:.1f} MB | {frames} | {dropped} |")
    rec = rows[0][1]["recorded"]
    print(f"\nxaso on disk: {rec['cameras']} cameras, {rec['frames']} frames in {rec['seconds']:.0f} s of footage; "
          f"frames per second of footage per camera: min {rec['fps_min']:.3f}, max {rec['fps_max']:.3f} (the source sends 25)")
    if len(rows) == 2:
        print(f"\nxaso / ffmpeg CPU per stream: {rows[0][1]['cpu'] / rows[1][1]['cpu']:.2f}")
    print(f"source (simulator) CPU during the runs: " + ", ".join(f"{r['source_cpu']:.1f} s" for _, r in rows))


if __name__ == "__main__":
    main()
