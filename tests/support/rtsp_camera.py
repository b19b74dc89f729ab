#!/usr/bin/python3
"""A real RTSP "IP camera" for xaso's tests, built on GStreamer's RTSP server.

One camera per process, listening on 127.0.0.1 only. When it is ready it prints exactly one
line to stdout:

    READY rtsp://127.0.0.1:PORT/PATH

Everything else goes to stderr; errors exit non-zero. SIGTERM/SIGINT exit with status 0.
Run it with Debian's /usr/bin/python3 (python3-gi); scripts/install-test-deps installs what
it needs. See tests/support/README.md for the flags, what was verified and known quirks.
"""

import argparse
import os
import signal
import sys
import threading

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

HOST = "127.0.0.1"
# Server-side RTP/RTCP ports for UDP clients are taken from this range, bound to 127.0.0.1
# (without an address pool GStreamer binds them to 0.0.0.0). It sits below Linux's
# ephemeral port range; ports another process holds are skipped.
UDP_PORT_MIN, UDP_PORT_MAX = 20000, 32767


def log(msg):
    print(f"rtsp_camera: {msg}", file=sys.stderr, flush=True)


def die(msg, code=1):
    log(f"error: {msg}")
    sys.stderr.flush()
    os._exit(code)


def parse_args(argv):
    p = argparse.ArgumentParser(description="RTSP test camera on 127.0.0.1 (GStreamer RTSP server)")
    p.add_argument("--port", type=int, default=8554,
                   help="RTSP port; 0 picks a free one (default 8554)")
    p.add_argument("--path", default="cam", help="mount path, served as rtsp://127.0.0.1:PORT/PATH")
    p.add_argument("--video", choices=["h264", "h265"], default="h264")
    p.add_argument("--size", default="640x360", help="WIDTHxHEIGHT of the live test pattern")
    p.add_argument("--fps", type=int, default=25, help="frame rate (live); fallback for --file")
    p.add_argument("--bitrate", type=int, default=1000, help="video bitrate in kbit/s")
    p.add_argument("--gop", type=int, default=None,
                   help="key-frame interval in frames (default: fps)")
    p.add_argument("--slices", action="store_true",
                   help="H.264 with several slices per frame (x264 zerolatency sliced threads)")
    p.add_argument("--audio", choices=["none", "aac", "pcmu", "pcma"], default="none")
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("--auth", choices=["none", "basic", "digest"], default=None,
                   help="authentication (default: none; basic when --user is given alone)")
    p.add_argument("--drop-every", type=float, default=0,
                   help="every N seconds close all client connections and sessions")
    p.add_argument("--stop-after", type=float, default=0, help="exit by itself after N seconds")
    p.add_argument("--file", help="replay this pre-encoded H.264 file (.mp4/.mov/.mkv or Annex-B "
                   ".h264) in a loop instead of encoding live")
    a = p.parse_args(argv)

    try:
        w, h = (int(x) for x in a.size.lower().split("x"))
        if w <= 0 or h <= 0:
            raise ValueError
    except ValueError:
        p.error(f"--size must look like 640x360, not {a.size!r}")
    a.width, a.height = w, h
    if not 0 <= a.port <= 65535:
        p.error("--port must be 0..65535")
    if a.fps <= 0 or a.bitrate <= 0:
        p.error("--fps and --bitrate must be positive")
    if a.gop is None:
        a.gop = a.fps
    if a.gop <= 0:
        p.error("--gop must be positive")
    a.path = "/" + a.path.strip("/")
    if a.path == "/":
        p.error("--path must not be empty")
    if a.auth is None:
        a.auth = "basic" if a.user is not None else "none"
    if a.auth != "none" and (a.user is None or a.password is None):
        p.error("--auth basic/digest needs --user and --password")
    if a.auth == "none" and (a.user is not None or a.password is not None):
        p.error("--user/--password need --auth basic or digest")
    if a.slices and (a.video != "h264" or a.file):
        p.error("--slices applies to live H.264 only")
    if a.file:
        if a.video != "h264":
            p.error("--file replays H.264 only")
        if not os.path.isfile(a.file):
            p.error(f"--file {a.file}: no such file")
    return a


# ---------------------------------------------------------------------------------------
# Launch strings


def video_live_launch(a):
    src = (f"videotestsrc is-live=true pattern=smpte ! "
           f"video/x-raw,format=I420,width={a.width},height={a.height},framerate={a.fps}/1 ! "
           f"clockoverlay halignment=left valignment=top shaded-background=true "
           f"font-desc=\"Sans {max(10, a.height // 18)}\" ! videoconvert ! ")
    if a.video == "h264":
        # zerolatency turns on x264's sliced threads: one slice per thread in every frame.
        # --slices keeps them, with 4 threads so there are 4 slices whatever the core count;
        # otherwise sliced-threads=false gives one slice per frame, like most cameras.
        slicing = "threads=4 " if a.slices else "sliced-threads=false "
        enc = (f"x264enc tune=zerolatency speed-preset=ultrafast bitrate={a.bitrate} "
               f"key-int-max={a.gop} bframes=0 {slicing}"
               "! rtph264pay name=pay0 pt=96 config-interval=-1")
    else:
        enc = (f"x265enc tune=zerolatency speed-preset=ultrafast bitrate={a.bitrate} "
               f"key-int-max={a.gop} ! rtph265pay name=pay0 pt=96 config-interval=-1")
    return src + enc


def audio_launch(a):
    if a.audio == "aac":
        return ("audiotestsrc is-live=true wave=sine freq=440 volume=0.3 ! "
                "audio/x-raw,rate=48000,channels=2 ! audioconvert ! avenc_aac bitrate=128000 ! "
                "rtpmp4gpay name=pay1 pt=97")
    if a.audio in ("pcmu", "pcma"):
        enc, pay, pt = (("mulawenc", "rtppcmupay", 0) if a.audio == "pcmu"
                        else ("alawenc", "rtppcmapay", 8))
        # 160 samples = 20 ms per packet, like a camera (the default would be 128 ms).
        return ("audiotestsrc is-live=true samplesperbuffer=160 wave=sine freq=440 volume=0.3 ! "
                f"audio/x-raw,rate=8000,channels=1 ! audioconvert ! {enc} ! "
                f"{pay} name=pay1 pt={pt}")
    return None


# ---------------------------------------------------------------------------------------
# --file: load the file's access units once, replay them from memory through a live appsrc


class FileClip:
    """The H.264 access units of a file, Annex-B with SPS/PPS before every key frame."""

    def __init__(self, path, fallback_fps):
        with open(path, "rb") as f:
            head = f.read(12)
        if head[4:8] == b"ftyp":
            demux = "qtdemux name=d d.video_0 ! queue ! "
        elif head[:4] == b"\x1a\x45\xdf\xa3":
            demux = "matroskademux name=d d.video_0 ! queue ! "
        else:
            demux = ""  # Annex-B byte stream
        desc = (f"filesrc location=\"{path}\" ! {demux}h264parse config-interval=-1 ! "
                "video/x-h264,stream-format=byte-stream,alignment=au ! "
                "appsink name=sink sync=false max-buffers=0")
        try:
            pipe = Gst.parse_launch(desc)
        except GLib.Error as e:
            die(f"cannot read {path}: {e.message}")
        sink = pipe.get_by_name("sink")
        pipe.set_state(Gst.State.PLAYING)
        frames = []  # (buffer, pts - dts or 0)
        caps = None
        while True:
            sample = sink.emit("try-pull-sample", 30 * Gst.SECOND)
            if sample is None:
                break
            caps = caps or sample.get_caps()
            buf = sample.get_buffer()
            off = 0
            none = Gst.CLOCK_TIME_NONE
            if buf.pts != none and buf.dts != none and buf.pts > buf.dts:
                off = buf.pts - buf.dts
            frames.append((buf, off))
        bus = pipe.get_bus()
        err = bus.pop_filtered(Gst.MessageType.ERROR)
        pipe.set_state(Gst.State.NULL)
        if err is not None:
            e, dbg = err.parse_error()
            die(f"cannot read {path}: {e.message} ({dbg})")
        if not frames:
            die(f"no H.264 video in {path}")
        # Start at the first key frame so every loop begins decodable.
        first_key = next((i for i, (b, _) in enumerate(frames)
                          if not b.has_flags(Gst.BufferFlags.DELTA_UNIT)), None)
        if first_key is None:
            die(f"no key frame in {path}")
        frames = frames[first_key:]
        s = caps.get_structure(0)
        ok, num, den = s.get_fraction("framerate")
        if not ok or num <= 0 or den <= 0:
            num, den = fallback_fps, 1
        self.frames = frames
        self.frame_dur = Gst.util_uint64_scale_int(Gst.SECOND, den, num)
        self.caps = caps
        self.fps = num / den
        self.period = len(frames) * self.frame_dur
        total = sum(b.get_size() for b, _ in frames)
        log(f"file {path}: {len(frames)} frames, {s.get_value('width')}x{s.get_value('height')} "
            f"@ {self.fps:.3f} fps, {self.period / Gst.SECOND:.2f} s, "
            f"{total * 8 / (self.period / Gst.SECOND) / 1000:.0f} kbit/s")


class Replayer:
    """Feeds a FileClip into one media's live appsrc at real-time pace, looping forever with
    continuous timestamps (loop k is offset by k * clip length)."""

    def __init__(self, clip, appsrc):
        self.clip = clip
        self.src = appsrc
        self.t0 = None  # running time of frame 0
        self.n = 0  # frames pushed so far (over all loops)
        self.stopped = False
        self.timer = GLib.timeout_add(5, self.tick)

    def stop(self):
        self.stopped = True

    def tick(self):
        self.timer = None
        if self.stopped:
            return False
        clock = self.src.get_clock()
        if clock is None:  # not playing yet
            self.timer = GLib.timeout_add(10, self.tick)
            return False
        now = clock.get_time() - self.src.get_base_time()
        if self.t0 is None:
            self.t0 = now
        clip = self.clip
        nframes = len(clip.frames)
        # Push every frame that is due (catching up after a late wake-up).
        while self.t0 + self.n * clip.frame_dur <= now:
            buf, off = clip.frames[self.n % nframes]
            out = buf.copy()  # shares the memory, new metadata
            dts = self.t0 + self.n * clip.frame_dur
            out.dts = dts
            out.pts = dts + off
            out.duration = clip.frame_dur
            out.unset_flags(Gst.BufferFlags.DISCONT)
            ret = self.src.emit("push-buffer", out)
            if ret != Gst.FlowReturn.OK:  # flushing / shutting down
                self.stopped = True
                return False
            self.n += 1
        wait_ns = self.t0 + self.n * clip.frame_dur - now
        self.timer = GLib.timeout_add(max(1, (wait_ns + 999_999) // 1_000_000), self.tick)
        return False


# ---------------------------------------------------------------------------------------


class Camera:
    def __init__(self, a):
        self.a = a
        self.loop = GLib.MainLoop()
        self.exit_code = 0
        self.replayers = {}
        self.clip = FileClip(a.file, a.fps) if a.file else None

        parts = []
        if self.clip:
            # (min/max-latency: without them appsrc reports a max latency of 0 and the
            # sinks warn "Pipeline construction is invalid, please add queues")
            parts.append("appsrc name=filesrc is-live=true format=time do-timestamp=false "
                         "min-latency=0 max-latency=1000000000 max-bytes=20000000 ! "
                         "rtph264pay name=pay0 pt=96 config-interval=-1")
        else:
            parts.append(video_live_launch(a))
        au = audio_launch(a)
        if au:
            parts.append(au)
        self.launch = "( " + "  ".join(parts) + " )"
        self.check_launch()

        self.server = GstRtspServer.RTSPServer()
        self.server.set_address(HOST)
        self.server.set_service(str(a.port))

        f = GstRtspServer.RTSPMediaFactory()
        f.set_launch(self.launch)
        f.set_shared(True)
        f.set_protocols(GstRtsp.RTSPLowerTrans.TCP | GstRtsp.RTSPLowerTrans.UDP)
        pool = GstRtspServer.RTSPAddressPool()
        if not pool.add_range(HOST, HOST, UDP_PORT_MIN, UDP_PORT_MAX, 0):
            die("cannot set up the UDP address pool")
        f.set_address_pool(pool)
        f.connect("media-configure", self.on_media_configure)
        self.factory = f

        if a.auth != "none":
            auth = GstRtspServer.RTSPAuth()
            token = GstRtspServer.RTSPToken()
            token.set_string("media.factory.role", "user")
            if a.auth == "basic":
                auth.add_basic(GstRtspServer.RTSPAuth.make_basic(a.user, a.password), token)
                auth.set_supported_methods(GstRtsp.RTSPAuthMethod.BASIC)
            else:
                auth.add_digest(a.user, a.password, token)
                auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
            self.server.set_auth(auth)
            f.add_role_from_structure(Gst.Structure.new_from_string(
                "user, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"))

        self.server.get_mount_points().add_factory(a.path, f)

    def check_launch(self):
        """Build the pipeline once so a missing plugin fails before READY."""
        try:
            p = Gst.parse_launch(self.launch.strip("() "))
        except GLib.Error as e:
            die(f"cannot build the pipeline ({e.message}); run scripts/install-test-deps\n"
                f"  pipeline: {self.launch}")
        p.set_state(Gst.State.NULL)

    @staticmethod
    def not_seekable(pad, info):
        # Answer SEEKING queries with the query's defaults (seekable=false): DROP makes the
        # query return TRUE untouched.
        q = info.get_query()
        if q is not None and q.type == Gst.QueryType.SEEKING:
            return Gst.PadProbeReturn.DROP
        return Gst.PadProbeReturn.OK

    def on_media_configure(self, factory, media):
        bin_ = media.get_element()
        # A camera ignores "Range: npt=0.000-" in PLAY. Since the test sources say they can
        # seek, GStreamer would honour it with a flushing seek of the shared pipeline, which
        # restarts the stream for every client already playing (or fails PLAY with 503 when
        # one source cannot seek). Reporting the media as not seekable makes PLAY never seek.
        for name in ("pay0", "pay1"):
            pay = bin_.get_by_name(name)
            if pay is not None:
                pay.get_static_pad("src").add_probe(Gst.PadProbeType.QUERY_UPSTREAM,
                                                    self.not_seekable)
        if self.clip is None:
            return
        src = bin_.get_by_name("filesrc")
        src.set_property("caps", self.clip.caps)
        rep = Replayer(self.clip, src)
        self.replayers[media] = rep

        def unprepared(m):
            r = self.replayers.pop(m, None)
            if r:
                r.stop()
        media.connect("unprepared", unprepared)

    def drop_all(self):
        """Close every client connection and every session, as a camera that drops its
        clients would. New clients are accepted right after."""
        pool = self.server.get_session_pool()
        counts = {"sessions": 0, "clients": 0}

        def drop_media(session, sessmedia, *_):
            return GstRtspServer.RTSPFilterResult.REMOVE

        def drop_session(pool_, session, *_):
            counts["sessions"] += 1
            session.filter(drop_media, None)
            return GstRtspServer.RTSPFilterResult.REMOVE

        def drop_client(server, client, *_):
            counts["clients"] += 1
            return GstRtspServer.RTSPFilterResult.REMOVE

        # (filter() returns only what it kept, so count in the callbacks)
        pool.filter(drop_session, None)
        self.server.client_filter(drop_client, None)
        return counts["sessions"], counts["clients"]

    def on_drop_timer(self):
        s, c = self.drop_all()
        log(f"dropped {c} connection(s), {s} session(s)")
        return True

    def on_session_cleanup(self):
        self.server.get_session_pool().cleanup()
        return True

    def quit(self, code=0):
        self.exit_code = code
        self.loop.quit()
        return False

    def run(self):
        if self.server.attach(None) == 0:
            die(f"cannot listen on {HOST}:{self.a.port}")
        port = self.server.get_bound_port()
        GLib.timeout_add_seconds(2, self.on_session_cleanup)
        if self.a.drop_every > 0:
            GLib.timeout_add(int(self.a.drop_every * 1000), self.on_drop_timer)
        if self.a.stop_after > 0:
            GLib.timeout_add(int(self.a.stop_after * 1000), self.quit)
        for sig in (signal.SIGTERM, signal.SIGINT):
            GLib.unix_signal_add(GLib.PRIORITY_HIGH, sig, self.quit)
        log(f"pipeline: {self.launch}")
        print(f"READY rtsp://{HOST}:{port}{self.a.path}", flush=True)
        self.loop.run()
        self.shutdown()

    def shutdown(self):
        # Bound the shutdown: if GStreamer hangs tearing down, exit anyway.
        threading.Timer(5.0, lambda: os._exit(self.exit_code)).start()
        try:
            for r in self.replayers.values():
                r.stop()
            self.drop_all()
            self.server.get_mount_points().remove_factory(self.a.path)
            # Let the medias unprepare (pipelines to NULL) on the main context.
            ctx = GLib.MainContext.default()
            for _ in range(50):
                if not ctx.iteration(False):
                    break
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            # Skip interpreter teardown: finalizing GObjects in arbitrary order at exit can
            # crash or hang in GStreamer; all pipelines are already stopped.
            os._exit(self.exit_code)


def main(argv):
    a = parse_args(argv)
    Gst.init(None)
    Camera(a).run()


if __name__ == "__main__":
    main(sys.argv[1:])
