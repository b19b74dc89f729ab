#!/usr/bin/env python3
"""Export benchmark: time to first byte and throughput of a 1-hour MP4 export.

1. Records the built-in simulated camera (640x360 H.264 + AAC, ~0.7 Mbit/s) with
   `segment_secs = 10` for ~25 s using the release build of xaso.
2. Makes an hour of footage from one recorded 10 s segment: 360 copies laid back to back
   before it, each with its `prft` wall-clock times shifted and its own index row (so the
   export reads 360 files and ~7 200 fragments: more files than 12 five-minute segments
   would be, so a conservative case).
3. Starts xaso again and exports the hour (and 10 minutes) with curl, several times, with
   the page cache warm and after dropping it (root only), and reports time to first byte
   and throughput. Also checks the hour-long file with ffprobe.

Usage: benches/export_load.py [--runs 3]
Needs: cargo build --release --bin xaso; ffmpeg; curl; python3. All on 127.0.0.1.
"""
import argparse, json, os, shutil, signal, sqlite3, statistics, struct, subprocess, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
XASO = os.path.join(ROOT, "target/release/xaso")
PW = "bench-password-1"
NTP_UNIX = 2208988800


def start(data, cfg):
    env = {k: v for k, v in os.environ.items() if not k.startswith("XASO_")}
    env["XASO_ADMIN_PASSWORD"] = PW
    p = subprocess.Popen([XASO, "--config", cfg, "--data-dir", data, "serve", "--listen", "127.0.0.1:0"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    while True:
        line = p.stdout.readline()
        if not line:
            raise SystemExit("xaso exited")
        if line.strip().startswith("Open:"):
            return p, line.split()[1].rstrip("/")


def stop(p):
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=60)


def shift_prft(data, delta_ms):
    """Adds delta_ms to every top-level prft box's NTP time."""
    b = bytearray(data)
    at = 0
    while at + 8 <= len(b):
        size, kind = struct.unpack(">I4s", b[at:at + 8])
        if size < 8:
            break
        if kind == b"prft":
            ntp = struct.unpack(">Q", b[at + 16:at + 24])[0]
            ms = ((ntp >> 32) - NTP_UNIX) * 1000 + (((ntp & 0xFFFFFFFF) * 1000 + (1 << 31)) >> 32)
            ms += delta_ms
            secs, frac = divmod(ms, 1000)
            ntp = ((secs + NTP_UNIX) << 32) | ((frac << 32) // 1000)
            b[at + 16:at + 24] = struct.pack(">Q", ntp)
        at += size
    return bytes(b)


def curl(url, cookie):
    o = subprocess.run(["curl", "-s", "-o", "/dev/null", "-b", cookie, "-w", "%{http_code} %{time_starttransfer} %{time_total} %{size_download}", url],
                       capture_output=True, text=True, check=True).stdout.split()
    return int(o[0]), float(o[1]), float(o[2]), int(o[3])


def drop_caches():
    try:
        subprocess.run(["sync"], check=True)
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def iso(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    if not os.path.exists(XASO):
        raise SystemExit("build first: cargo build --release --bin xaso")
    work = tempfile.mkdtemp(prefix="xaso-export-bench-")
    try:
        data = os.path.join(work, "data")
        cfg = os.path.join(work, "xaso.toml")
        with open(cfg, "w") as f:
            f.write("[recording]\nsegment_secs = 10\n")
        p, base = start(data, cfg)
        time.sleep(25)
        stop(p)
        db = sqlite3.connect(os.path.join(data, "xaso.db"))
        cols = "camera_id, path, run_id, start_ms, end_ms, bytes, video_samples, audio_samples, video_codec, audio_codec, width, height, keyframes, open"
        rows = db.execute(f"SELECT {cols} FROM segments WHERE open = 0 ORDER BY start_ms").fetchall()
        full = [r for r in rows if r[4] - r[3] >= 9500]
        if not full:
            raise SystemExit(f"no complete 10 s segment recorded: {rows}")
        src = full[0]
        cam, path, run_id, s0, e0 = src[0], src[1], src[2], src[3], src[4]
        dur = e0 - s0
        with open(os.path.join(data, path), "rb") as f:
            seg = f.read()
        earliest = min(r[3] for r in rows)
        hour_end = earliest
        n = 3_600_000 // dur + 1
        os.makedirs(os.path.join(data, f"recordings/{cam}/synth"), exist_ok=True)
        for k in range(1, n + 1):
            start_ms = earliest - k * dur
            rel = f"recordings/{cam}/synth/{start_ms}.mp4"
            with open(os.path.join(data, rel), "wb") as f:
                f.write(shift_prft(seg, start_ms - s0))
            db.execute(f"INSERT INTO segments ({cols}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (cam, rel, run_id) + (start_ms, start_ms + dur) + src[5:])
        db.commit()
        db.close()
        p, base = start(data, cfg)
        cookie = os.path.join(work, "cookies")
        subprocess.run(["curl", "-s", "-c", cookie, "-H", "content-type: application/json", "-d",
                        json.dumps({"username": "admin", "password": PW}), base + "/api/login"], check=True, capture_output=True)
        hour = (hour_end - 3_600_000, hour_end)
        # One export first: segments copied without sample-table sidecars get them then, as
        # every closed segment has in steady state.
        curl(f"{base}/api/cameras/{cam}/export.mp4?start={iso(hour[0])}&end={iso(hour[1])}", cookie)
        results = []
        for label, (x0, x1) in [("1 hour", hour), ("10 minutes", (hour_end - 600_000, hour_end))]:
            url = f"{base}/api/cameras/{cam}/export.mp4?start={iso(x0)}&end={iso(x1)}"
            for cache in ("warm", "cold"):
                ttfb, total, size = [], [], 0
                for _ in range(a.runs):
                    if cache == "cold" and not drop_caches():
                        break
                    code, t1, tt, size = curl(url, cookie)
                    assert code == 200, code
                    ttfb.append(t1)
                    total.append(tt)
                if ttfb:
                    results.append((label, cache, statistics.median(ttfb), statistics.median(total), size))
        clip = os.path.join(work, "hour.mp4")
        subprocess.run(["curl", "-s", "-b", cookie, "-o", clip,
                        f"{base}/api/cameras/{cam}/export.mp4?start={iso(hour[0])}&end={iso(hour[1])}"], check=True)
        probe = json.loads(subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_format", clip],
                                          capture_output=True, text=True, check=True).stdout)
        stop(p)
        print(f"\nfootage: {n} segment files of {dur / 1000:.1f} s (640x360 H.264 + AAC, ~0.7 Mbit/s); median of {a.runs} runs\n")
        print("| export | page cache | time to first byte | total time | size | throughput |")
        print("| --- | --- | --- | --- | --- | --- |")
        for label, cache, t1, tt, size in results:
            print(f"| {label} | {cache} | {t1 * 1000:.0f} ms | {tt * 1000:.0f} ms | {size / 1e6:.1f} MB | {size / 1e6 / tt:.0f} MB/s |")
        print(f"\nffprobe of the 1-hour file: duration {float(probe['format']['duration']):.2f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
