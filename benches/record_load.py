#!/usr/bin/env python3
"""Recording load benchmark: xaso against one `ffmpeg -c copy -f segment` per camera.

N simulated cameras at about 4 Mbit/s (a pre-encoded 1080p25 H.264 clip, no audio, served
by xaso's Rust RTSP simulator, which costs little CPU) are recorded for SECONDS by
  1. xaso (release build), then
  2. N ffmpeg processes (the usual way people record),
one after the other in the same run, on the same source. For each it reports CPU seconds
per stream-hour (user+system from /proc), CPU % of one core per stream, RSS per camera,
and frames received vs expected (xaso also reports frames dropped).

With --moonfire BIN, Moonfire NVR (a `moonfire-nvr` binary you built yourself; nothing is
downloaded) records the same N cameras between the xaso and ffmpeg runs: the script creates
a fresh database and sample-file dir in the temp dir, adds each camera's main stream (RTSP
over TCP, mode "record", flush_if_sec from --moonfire-flush-if-sec) straight into its SQLite
schema, runs `moonfire-nvr run` with its web listener on 127.0.0.1, waits until every stream
has a recording with frames in it, then measures it like the others. If it does not record,
the script says so instead of printing a row.

Usage: benches/record_load.py [--cameras N] [--seconds S] [--rounds R] [--skip-ffmpeg]
                              [--moonfire BIN [--moonfire-flush-if-sec S]]
Needs: cargo build --release --bin xaso && cargo build --release -p xaso-simcam --example simcam
       ffmpeg (Debian). Everything runs on 127.0.0.1. Prints a Markdown table.
"""
import argparse, json, os, shutil, signal, socket, sqlite3, subprocess, sys, tempfile, time, urllib.request, \
    http.cookiejar, uuid

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


def make_clip(path, size="1920x1080", rate="4M", gop=50):
    """A 20 s H.264 test clip at 25 fps (made once): `size`, bit `rate`, a keyframe every `gop`."""
    if os.path.exists(path):
        return
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25",
                    "-t", "20", "-c:v", "libx264", "-preset", "veryfast", "-b:v", rate, "-maxrate", rate,
                    "-bufsize", rate, "-g", str(gop), "-bf", "0", "-pix_fmt", "yuv420p", "-movflags", "+faststart",
                    path], check=True)


def start_simcam(clip):
    p = subprocess.Popen([SIMCAM, "127.0.0.1:0", clip], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = p.stdout.readline().strip()
    assert line.startswith("READY "), line
    return p, line.split()[1]


def start_xaso(cfg, data):
    """Starts `xaso serve` (release build) on a free port, logs in as admin; returns the
    process, the base URL and a urllib opener holding the session cookie."""
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
    return p, base, op


def xaso_run(n, secs, url, work):
    data = os.path.join(work, "xaso")
    os.makedirs(data)
    cfg = os.path.join(work, "xaso.toml")
    with open(cfg, "w") as f:
        f.write("[recording]\nsegment_secs = 60\nsimulated_camera = false\nkeep_free_gb = 0.0\n")
        for i in range(n):
            f.write(f'\n[[camera]]\nname = "cam{i}"\nurl = "{url}"\n')
    p, base, op = start_xaso(cfg, data)

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


def free_port():
    with socket.socket() as sk:
        sk.bind(("127.0.0.1", 0))
        return sk.getsockname()[1]


def moonfire_run(binary, n, secs, url, work, flush_if_sec):
    """Records the N cameras with Moonfire NVR. Returns a result dict, or dict(error=...)."""
    base_dir = os.path.join(work, "moonfire")
    db_dir, sample_dir, ui_dir = (os.path.join(base_dir, d) for d in ("db", "sample", "ui"))
    os.makedirs(ui_dir)  # an empty UI dir: the API is all this needs
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOONFIRE_")}
    env["MOONFIRE_LOG"] = "info"
    env["MOONFIRE_FORMAT"] = "systemd"  # plain text: no colour codes in the log tail we may print
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, env=env).stdout.strip()
    version = version.split()[-1] if version else "(unknown version)"
    r = subprocess.run([binary, "init", "--db-dir", db_dir], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        return dict(version=version, error=f"`moonfire-nvr init` failed: {r.stderr.strip()[-500:]}")
    # Configure as its `config` TUI would: one sample-file dir (Moonfire creates it and writes its
    # meta file on first open, as last_complete_open_id is null), N cameras, each with a main stream.
    db = sqlite3.connect(os.path.join(db_dir, "db"))
    db.execute("PRAGMA foreign_keys = ON")
    with db:
        dir_id = db.execute("INSERT INTO sample_file_dir (uuid, config, last_complete_open_id) VALUES (?, ?, NULL)",
                            (uuid.uuid4().bytes, json.dumps({"path": sample_dir}))).lastrowid
        for i in range(n):
            cam_id = db.execute("INSERT INTO camera (uuid, short_name, config) VALUES (?, ?, ?)",
                                (uuid.uuid4().bytes, f"cam{i}", "{}")).lastrowid
            cfg = dict(mode="record", url=url, rtspTransport="tcp", retainBytes=100 * 2**30, flushIfSec=flush_if_sec)
            db.execute("INSERT INTO stream (camera_id, sample_file_dir_id, type, config, cum_recordings, "
                       "cum_media_duration_90k, cum_runs) VALUES (?, ?, 'main', ?, 0, 0, 0)",
                       (cam_id, dir_id, json.dumps(cfg)))
    db.close()
    port = free_port()
    cfg_path = os.path.join(base_dir, "moonfire-nvr.toml")
    with open(cfg_path, "w") as f:
        f.write(f'dbDir = "{db_dir}"\nuiDir = "{ui_dir}"\n\n[[binds]]\nipv4 = "127.0.0.1:{port}"\n'
                'allowUnauthenticatedPermissions = { viewVideo = true }\n')
    log_path = os.path.join(work, "moonfire.log")
    log = open(log_path, "w")
    p = subprocess.Popen([binary, "run", "--config", cfg_path], stdout=log, stderr=subprocess.STDOUT, env=env)
    api = f"http://127.0.0.1:{port}/api"

    def fail(msg):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
        log.close()
        with open(log_path, errors="replace") as f:
            tail = "".join(f.readlines()[-15:])
        return dict(version=version, error=f"{msg}; last lines of its log:\n{tail}")

    def get(path):
        return json.loads(urllib.request.urlopen(api + path, timeout=30).read())

    deadline = time.time() + 120  # it scans dirs and opens the database first
    cams = None
    while cams is None:
        if p.poll() is not None:
            return fail(f"moonfire-nvr exited with status {p.returncode}")
        if time.time() > deadline:
            return fail("its API did not answer within 120 s")
        try:
            cams = [c["uuid"] for c in get("/")["cameras"]]
        except OSError:
            time.sleep(0.5)
    if len(cams) != n:
        return fail(f"its API lists {len(cams)} cameras, expected {n}")

    def recordings():
        # Every recording of the main stream, including uncommitted and growing ones (API doc);
        # videoSamples counts the frames written so far.
        return [get(f"/cameras/{c}/main/recordings")["recordings"] for c in cams]

    def frames():
        return [sum(rec["videoSamples"] for rec in recs) for recs in recordings()]

    deadline = time.time() + 60
    while not all(f > 0 for f in frames()):
        if p.poll() is not None:
            return fail(f"moonfire-nvr exited with status {p.returncode}")
        if time.time() > deadline:
            return fail("not every stream had a recording with frames within 60 s")
        time.sleep(0.5)
    time.sleep(5)  # warm-up, as for xaso
    f0 = frames()
    c0, t0 = cpu_seconds(p.pid), time.time()
    time.sleep(secs)
    c1, t1 = cpu_seconds(p.pid), time.time()
    f1 = frames()
    rss = rss_kb(p.pid)
    if p.poll() is not None:
        return fail(f"moonfire-nvr exited with status {p.returncode} while measuring")
    # What it has recorded so far, from its API (committed or not), and the sample files' size.
    per_stream = [(sum(r["videoSamples"] for r in recs), sum(r["endTime90k"] - r["startTime90k"] for r in recs),
                   sum(r["sampleFileBytes"] for r in recs)) for recs in recordings()]
    fps = [v * 90000 / d for v, d, _ in per_stream if d]
    disk = sum(e.stat().st_size for e in os.scandir(sample_dir) if e.name != "meta")
    recorded = dict(cameras=sum(1 for v, _, _ in per_stream if v), fps_min=min(fps, default=0),
                    fps_max=max(fps, default=0), frames=sum(v for v, _, _ in per_stream),
                    seconds=sum(d for _, d, _ in per_stream) / 90000,
                    bytes=sum(b for _, _, b in per_stream), file_bytes=disk)
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=120)
    except subprocess.TimeoutExpired:
        p.kill()
    log.close()
    db = sqlite3.connect(os.path.join(db_dir, "db"))
    recorded["committed"] = db.execute("SELECT COUNT(*) FROM recording").fetchone()[0]
    db.close()
    return dict(version=version, cpu=c1 - c0, wall=t1 - t0, rss_kb=rss, frames=sum(f1) - sum(f0), dropped=None,
                recorded=recorded, flush_if_sec=flush_if_sec)


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
    ap.add_argument("--rounds", type=int, default=1,
                    help="run the recorders in turn this many times; each row is its median round")
    ap.add_argument("--moonfire", metavar="BIN", help="also record with this moonfire-nvr binary")
    ap.add_argument("--moonfire-flush-if-sec", type=int, default=120,
                    help="Moonfire's per-stream flush_if_sec (its install guide suggests 120)")
    a = ap.parse_args()
    if a.moonfire and not os.access(a.moonfire, os.X_OK):
        raise SystemExit(f"--moonfire {a.moonfire}: not an executable")
    for exe in (XASO, SIMCAM):
        if not os.path.exists(exe):
            raise SystemExit(f"missing {exe}: build the release binaries first (see the docstring)")
    cache = os.path.join(ROOT, "target/bench")
    os.makedirs(cache, exist_ok=True)
    clip = os.path.join(cache, "clip-1080p25-4mbit.mp4")
    make_clip(clip)
    work = tempfile.mkdtemp(prefix="xaso-bench-", dir=os.environ.get("BENCH_DIR"))
    sim, url = start_simcam(clip)
    runs = {}  # recorder name -> one result per round
    moonfire = None
    try:
        for rnd in range(a.rounds):
            sc0 = cpu_seconds(sim.pid)
            x = xaso_run(a.cameras, a.seconds, url, work)
            x["source_cpu"] = cpu_seconds(sim.pid) - sc0
            runs.setdefault("xaso", []).append(x)
            shutil.rmtree(os.path.join(work, "xaso"), ignore_errors=True)
            if a.moonfire:
                sc0 = cpu_seconds(sim.pid)
                m = moonfire_run(a.moonfire, a.cameras, a.seconds, url, work, a.moonfire_flush_if_sec)
                m["source_cpu"] = cpu_seconds(sim.pid) - sc0
                if "error" in m:
                    moonfire = m
                else:
                    runs.setdefault(f"Moonfire NVR {m['version']}", []).append(m)
                shutil.rmtree(os.path.join(work, "moonfire"), ignore_errors=True)
            if not a.skip_ffmpeg:
                sc0 = cpu_seconds(sim.pid)
                f = ffmpeg_run(a.cameras, a.seconds, url, work)
                f["source_cpu"] = cpu_seconds(sim.pid) - sc0
                runs.setdefault("ffmpeg -c copy -f segment (one per camera)", []).append(f)
    finally:
        sim.send_signal(signal.SIGTERM)
        sim.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    # Each recorder's row is its median round by CPU (rounds alternate recorders, so a slow
    # moment of the machine does not fall on one of them only).
    rows = [(name, sorted(rs, key=lambda r: r["cpu"] / r["wall"])[len(rs) // 2]) for name, rs in runs.items()]
    mname = next((name for name in runs if name.startswith("Moonfire")), None)
    if mname is not None:
        moonfire = dict(rows)[mname]
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
    if moonfire is not None:
        if "error" in moonfire:
            print(f"\nMoonfire NVR {moonfire['version']} did NOT record, so it has no row: {moonfire['error']}")
        else:
            rec = moonfire["recorded"]
            print(f"Moonfire recorded (its API just before SIGTERM, committed or not; flush_if_sec = "
                  f"{moonfire['flush_if_sec']}): {rec['cameras']} streams, {rec['frames']} frames in {rec['seconds']:.0f} s "
                  f"of footage; frames per second of footage per stream: min {rec['fps_min']:.3f}, max {rec['fps_max']:.3f}; "
                  f"{rec['bytes'] / 1e6:.0f} MB of video in its index, {rec['file_bytes'] / 1e6:.0f} MB of sample files "
                  f"on disk; recordings in its database after a graceful shutdown: {rec['committed']}")
    # Same measuring window for every recorder, so total CPU seconds compare per stream.
    x, m = rows[0][1], (moonfire if moonfire is not None and "error" not in moonfire else None)
    f = next((r for name, r in rows if name.startswith("ffmpeg")), None)
    if m is not None or f is not None:
        print()
    if m is not None:
        print(f"xaso / Moonfire CPU per stream: {(x['cpu'] / x['wall']) / (m['cpu'] / m['wall']):.2f} (medians)")
        if a.rounds > 1:
            per = [(xr["cpu"] / xr["wall"]) / (mr["cpu"] / mr["wall"]) for xr, mr in zip(runs["xaso"], runs[mname])]
            print("  round by round: " + ", ".join(f"{v:.2f}" for v in per))
    if f is not None:
        print(f"xaso / ffmpeg CPU per stream: {x['cpu'] / f['cpu']:.2f}")
    print(f"source (simulator) CPU during the runs: " + ", ".join(f"{r['source_cpu']:.1f} s" for _, r in rows))
    if a.rounds > 1:
        for name, rs in runs.items():
            print(f"{name}: % of one core per stream, round by round: "
                  + ", ".join(f"{100 * r['cpu'] / r['wall'] / n:.3f}" for r in rs))


if __name__ == "__main__":
    main()
