//! One camera's recording state machine, with no I/O: frames in (with the local time they
//! arrived), file operations out ([`Out`]). It starts a run at a video keyframe, maps
//! camera time to wall time ([`Timeline`]), cuts segments at keyframes every
//! `segment_ms`, and ends the run when the camera's clock jumps or its video parameters
//! change (a new resolution starts a new file rather than corrupting one).

use bytes::Bytes;
use xaso_base::Codec;
use xaso_ingest::{Frame, TrackInfo};
use xaso_record::fmp4::{Fragment, Sample, SegmentWriter, TrackConfig, g711_sample_entry};
use xaso_record::timeline::{Step, Timeline};

#[derive(Clone, Debug)]
pub struct RunConfig {
    pub camera_id: i64,
    pub segment_ms: i64,
    pub fragment_ms: u32,
}

/// What a new segment is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentMeta {
    pub camera_id: i64,
    /// Relative to the data directory.
    pub path: String,
    pub run_id: i64,
    pub start_ms: i64,
    pub video_codec: Codec,
    pub audio_codec: Option<Codec>,
    pub width: u16,
    pub height: u16,
}

/// What one fragment added to a segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FragMeta {
    /// Wall-clock time at the end of the fragment.
    pub end_ms: i64,
    pub video_samples: u32,
    pub audio_samples: u32,
    /// When the fragment starts with a keyframe: (ms from the segment's start, byte offset).
    pub keyframe: Option<(i64, u64)>,
}

#[derive(Debug)]
pub enum Out {
    Create {
        meta: SegmentMeta,
        init: Vec<u8>,
    },
    Append {
        path: String,
        bytes: xaso_record::fmp4::FragmentBytes,
        frag: FragMeta,
    },
    Close {
        path: String,
    },
}

struct Run {
    id: i64,
    origin_ms: i64,
    timelines: Vec<Option<Timeline>>,
    video: usize,
}

struct Segment {
    path: String,
    start_ms: i64,
    writer: SegmentWriter,
    /// Ingest track -> writer track.
    map: Vec<Option<usize>>,
    bytes: u64,
    timescales: Vec<u32>,
    /// Per writer track: the run decode time at the segment's start, so that every file's
    /// own timeline starts at 0.
    base: Vec<u64>,
    /// Per writer track: the decode time of the last sample written.
    last: Vec<Option<u64>>,
}

pub struct RunState {
    cfg: RunConfig,
    infos: Vec<Option<TrackInfo>>,
    run: Option<Run>,
    seg: Option<Segment>,
    /// Frames that arrived outside a run (waiting for a keyframe), for the status page.
    pub frames_skipped: u64,
}

fn track_config(info: &TrackInfo) -> Option<TrackConfig> {
    let entry = match (&info.sample_entry, info.codec) {
        (Some(e), _) => e.clone(),
        (None, c @ (Codec::Pcmu | Codec::Pcma)) => {
            g711_sample_entry(c, info.clock_rate, info.channels.max(1))
        }
        _ => return None,
    };
    Some(TrackConfig {
        codec: info.codec,
        timescale: info.clock_rate,
        sample_entry: entry,
        width: info.width,
        height: info.height,
    })
}

impl RunState {
    /// `known`: what the stream describes of each track before its first frame.
    pub fn new(cfg: RunConfig, known: Vec<Option<TrackInfo>>) -> Self {
        RunState {
            cfg,
            infos: known,
            run: None,
            seg: None,
            frames_skipped: 0,
        }
    }

    pub fn is_recording(&self) -> bool {
        self.seg.is_some()
    }

    /// Handles a frame that arrived at local time `local_ms`.
    pub fn on_frame(&mut self, f: Frame, local_ms: i64) -> Vec<Out> {
        let mut out = Vec::new();
        if f.track >= self.infos.len() {
            return out;
        }
        if let Some(p) = f.params.clone() {
            let changed = self.infos[f.track].as_ref().is_some_and(|old| *old != p);
            if changed && p.codec.is_video() {
                // New resolution or codec settings: this file ends, the next begins.
                self.end_run(&mut out);
            }
            self.infos[f.track] = Some(p);
        }
        let is_video = self.infos[f.track]
            .as_ref()
            .is_some_and(|i| i.codec.is_video());
        if self.run.is_none() && !(is_video && f.is_sync && self.start_run(f.track, local_ms)) {
            self.frames_skipped += 1;
            return out;
        }
        let run = self.run.as_mut().expect("run started");
        let clock = self.infos[f.track]
            .as_ref()
            .map_or(90_000, |i| i.clock_rate);
        let step = match &mut run.timelines[f.track] {
            Some(tl) => tl.push(f.ts, local_ms),
            slot @ None => {
                let (tl, s) = Timeline::new(clock, f.ts, local_ms, run.origin_ms);
                *slot = Some(tl);
                s
            }
        };
        let (dts, wall_ms) = match step {
            Step::Sample { dts, wall_ms } => (dts, wall_ms),
            Step::Discontinuity => {
                self.end_run(&mut out);
                if is_video && f.is_sync && self.start_run(f.track, local_ms) {
                    return self.on_frame_in_run(f, local_ms, out);
                }
                self.frames_skipped += 1;
                return out;
            }
        };
        self.place(f, dts, wall_ms, out)
    }

    fn on_frame_in_run(&mut self, f: Frame, local_ms: i64, out: Vec<Out>) -> Vec<Out> {
        let run = self.run.as_mut().expect("run started");
        let clock = self.infos[f.track]
            .as_ref()
            .map_or(90_000, |i| i.clock_rate);
        let (tl, step) = Timeline::new(clock, f.ts, local_ms, run.origin_ms);
        run.timelines[f.track] = Some(tl);
        match step {
            Step::Sample { dts, wall_ms } => self.place(f, dts, wall_ms, out),
            Step::Discontinuity => out,
        }
    }

    /// Puts a timed frame into the current segment, opening or rolling segments over at
    /// video keyframes.
    fn place(&mut self, f: Frame, dts: u64, wall_ms: i64, mut out: Vec<Out>) -> Vec<Out> {
        let run = self.run.as_ref().expect("in a run");
        let is_primary = f.track == run.video;
        if is_primary && f.is_sync {
            let due = self
                .seg
                .as_ref()
                .is_some_and(|s| wall_ms - s.start_ms >= self.cfg.segment_ms);
            if due {
                self.close_segment(&mut out);
            }
            if self.seg.is_none() {
                self.open_segment(wall_ms, dts, &mut out);
            }
        }
        let Some(seg) = self.seg.as_mut() else {
            self.frames_skipped += 1;
            return out;
        };
        let Some(wt) = seg.map[f.track] else {
            return out; // a track that joined after this segment began: from the next one
        };
        // Audio captured just before the keyframe that opened the segment but received
        // after it (a keyframe takes many packets, and each track's clock is corrected
        // for drift on its own) starts the segment's audio at 0. A second one that early
        // would have no duration (two samples at one decode time: every export of it
        // would carry duplicate timestamps): left out, counted.
        let rel = dts.saturating_sub(seg.base[wt]);
        if seg.last[wt].is_some_and(|l| rel <= l) {
            self.frames_skipped += 1;
            return out;
        }
        seg.last[wt] = Some(rel);
        let sample = Sample {
            track: wt,
            dts: rel,
            is_sync: f.is_sync,
            data: f.data,
            wall_ms,
        };
        match seg.writer.push(sample) {
            Ok(Some(frag)) => {
                let o = Self::append(seg, frag);
                out.push(o);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(camera = self.cfg.camera_id, error = %e, "ending the run");
                self.end_run(&mut out);
            }
        }
        out
    }

    fn start_run(&mut self, video: usize, local_ms: i64) -> bool {
        if self.infos[video].as_ref().and_then(track_config).is_none() {
            return false;
        }
        self.run = Some(Run {
            id: local_ms,
            origin_ms: local_ms,
            timelines: (0..self.infos.len()).map(|_| None).collect(),
            video,
        });
        true
    }

    fn open_segment(&mut self, wall_ms: i64, video_dts: u64, out: &mut Vec<Out>) {
        let run = self.run.as_ref().expect("in a run");
        let mut configs = Vec::new();
        let mut map = vec![None; self.infos.len()];
        let mut timescales = Vec::new();
        let mut base = Vec::new();
        let video_info = self.infos[run.video].clone().expect("run has video");
        let mut audio_codec = None;
        let order =
            std::iter::once(run.video).chain((0..self.infos.len()).filter(|&t| t != run.video));
        for t in order {
            let Some(info) = &self.infos[t] else { continue };
            if t != run.video && (info.codec.is_video() || audio_codec.is_some()) {
                continue;
            }
            let Some(c) = track_config(info) else {
                continue;
            };
            if t != run.video {
                audio_codec = Some(info.codec);
            }
            map[t] = Some(configs.len());
            timescales.push(c.timescale);
            base.push(if t == run.video {
                video_dts
            } else {
                ((wall_ms - run.origin_ms).max(0) as u64) * u64::from(c.timescale) / 1000
            });
            configs.push(c);
        }
        let writer = SegmentWriter::new(configs, self.cfg.fragment_ms);
        let init = writer.init_segment();
        let date =
            chrono::DateTime::<chrono::Utc>::from_timestamp_millis(wall_ms).unwrap_or_default();
        let path = format!(
            "recordings/{}/{}/{wall_ms}.mp4",
            self.cfg.camera_id,
            date.format("%Y-%m-%d")
        );
        let meta = SegmentMeta {
            camera_id: self.cfg.camera_id,
            path: path.clone(),
            run_id: run.id,
            start_ms: wall_ms,
            video_codec: video_info.codec,
            audio_codec,
            width: video_info.width,
            height: video_info.height,
        };
        self.seg = Some(Segment {
            path,
            start_ms: wall_ms,
            writer,
            map,
            bytes: init.len() as u64,
            timescales,
            last: vec![None; base.len()],
            base,
        });
        out.push(Out::Create { meta, init });
    }

    fn append(seg: &mut Segment, frag: Fragment) -> Out {
        let ts = i64::from(seg.timescales[seg.writer.primary()]);
        let end_ms = seg.start_ms + ((frag.start_dts + frag.duration) as i64) * 1000 / ts;
        let keyframe = frag
            .starts_with_key
            .then_some((frag.wall_ms - seg.start_ms, seg.bytes));
        seg.bytes += frag.bytes.len() as u64;
        let audio_samples = frag.samples.iter().skip(1).sum();
        Out::Append {
            path: seg.path.clone(),
            frag: FragMeta {
                end_ms,
                video_samples: frag.samples[0],
                audio_samples,
                keyframe,
            },
            bytes: frag.bytes,
        }
    }

    fn close_segment(&mut self, out: &mut Vec<Out>) {
        let Some(mut seg) = self.seg.take() else {
            return;
        };
        for frag in seg.writer.finish() {
            out.push(Self::append(&mut seg, frag));
        }
        out.push(Out::Close { path: seg.path });
    }

    /// Ends the run (and its open segment); the next run starts at a video keyframe.
    pub fn end_run(&mut self, out: &mut Vec<Out>) {
        self.close_segment(out);
        self.run = None;
    }

    /// The segment being written was lost on disk (e.g. a write error): start another at
    /// the next keyframe.
    pub fn abandon_segment(&mut self) {
        self.seg = None;
    }
}

/// A frame's bytes, shared (for building test frames).
pub fn frame(
    track: usize,
    ts: i64,
    is_sync: bool,
    data: Bytes,
    params: Option<TrackInfo>,
) -> Frame {
    Frame {
        track,
        ts,
        is_sync,
        data,
        params,
        loss: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video(w: u16) -> TrackInfo {
        let mut entry = Vec::new();
        xaso_record::boxes::write_box(&mut entry, b"avc1", |o| o.extend_from_slice(&[0; 78]));
        TrackInfo {
            codec: Codec::H264,
            clock_rate: 90_000,
            sample_entry: Some(entry),
            width: w,
            height: 360,
            channels: 0,
            rfc6381: None,
        }
    }

    fn pcmu() -> TrackInfo {
        TrackInfo {
            codec: Codec::Pcmu,
            clock_rate: 8000,
            sample_entry: None,
            width: 0,
            height: 0,
            channels: 1,
            rfc6381: None,
        }
    }

    fn cfg() -> RunConfig {
        RunConfig {
            camera_id: 7,
            segment_ms: 10_000,
            fragment_ms: 500,
        }
    }

    /// Feeds `secs` of 25 fps video (keyframe each second) and 20 ms audio frames.
    fn feed(
        rs: &mut RunState,
        t0: i64,
        from_frame: i64,
        secs: i64,
        params: Option<TrackInfo>,
    ) -> Vec<Out> {
        let mut out = Vec::new();
        for i in from_frame..from_frame + secs * 25 {
            let p = if i == from_frame {
                params.clone()
            } else {
                None
            };
            let local = t0 + i * 40;
            out.extend(rs.on_frame(
                frame(0, i * 3600, i % 25 == 0, Bytes::from_static(&[1; 64]), p),
                local,
            ));
            for j in 0..2 {
                out.extend(rs.on_frame(
                    frame(
                        1,
                        (i * 2 + j) * 160,
                        true,
                        Bytes::from_static(&[0xff; 160]),
                        None,
                    ),
                    local,
                ));
            }
        }
        out
    }

    fn summary(out: &[Out]) -> (Vec<SegmentMeta>, usize, u32, u32) {
        let mut metas = Vec::new();
        let (mut closes, mut v, mut a) = (0, 0, 0);
        for o in out {
            match o {
                Out::Create { meta, .. } => metas.push(meta.clone()),
                Out::Append { frag, .. } => {
                    v += frag.video_samples;
                    a += frag.audio_samples;
                }
                Out::Close { .. } => closes += 1,
            }
        }
        (metas, closes, v, a)
    }

    #[test]
    fn segments_roll_over_at_keyframes() {
        let t0 = 1_795_000_000_000;
        // Audio is described by the SDP, video only by its first frame.
        let mut rs = RunState::new(cfg(), vec![None, Some(pcmu())]);
        let mut out = feed(&mut rs, t0, 0, 25, Some(video(640)));
        rs.end_run(&mut out);
        let (metas, closes, v, a) = summary(&out);
        assert_eq!(
            metas.iter().map(|m| m.start_ms - t0).collect::<Vec<_>>(),
            vec![0, 10_000, 20_000]
        );
        assert_eq!(closes, 3);
        assert_eq!(v, 25 * 25, "every video frame recorded");
        assert_eq!(a, 25 * 50, "all audio recorded");
        assert!(
            metas
                .iter()
                .all(|m| m.audio_codec == Some(Codec::Pcmu) && m.run_id == metas[0].run_id)
        );
        assert!(metas[0].path.starts_with("recordings/7/"));
        // Keyframes indexed at each second.
        let kf: Vec<i64> = out
            .iter()
            .filter_map(|o| match o {
                Out::Append { frag, path, .. } if *path == metas[0].path => {
                    frag.keyframe.map(|k| k.0)
                }
                _ => None,
            })
            .collect();
        assert_eq!(kf, (0..10).map(|s| s * 1000).collect::<Vec<_>>());
    }

    /// At a segment roll-over, audio frames timestamped before the new keyframe but
    /// received after it are never written at the segment's start with no duration.
    #[test]
    fn late_audio_at_a_roll_over_is_not_written_at_the_start() {
        let t0 = 1_795_000_000_000;
        let mut rs = RunState::new(cfg(), vec![None, Some(pcmu())]);
        let mut out = Vec::new();
        // Audio frames of 20 ms arrive on time, but the two just before each keyframe
        // arrive right after it.
        let mut held = Vec::new();
        for i in 0..300i64 {
            let p = (i == 0).then(|| video(640));
            out.extend(rs.on_frame(
                frame(0, i * 3600, i % 25 == 0, Bytes::from_static(&[1; 64]), p),
                t0 + i * 40,
            ));
            for k in held.drain(..) {
                out.extend(rs.on_frame(
                    frame(1, k * 160, true, Bytes::from_static(&[0xff; 160]), None),
                    t0 + i * 40 + 1,
                ));
            }
            for k in [i * 2, i * 2 + 1] {
                if (i + 1) % 25 == 0 {
                    held.push(k);
                } else {
                    out.extend(rs.on_frame(
                        frame(1, k * 160, true, Bytes::from_static(&[0xff; 160]), None),
                        t0 + k * 20,
                    ));
                }
            }
        }
        rs.end_run(&mut out);
        let (metas, _, _, _) = summary(&out);
        assert_eq!(metas.len(), 2, "a roll-over at 10 s");
        // Each segment's audio, read back: no sample without duration.
        for m in &metas {
            let mut file = Vec::new();
            for o in &out {
                match o {
                    Out::Create { meta, init } if meta.path == m.path => file.extend(init),
                    Out::Append { path, bytes, .. } if *path == m.path => {
                        file.extend(bytes.to_vec())
                    }
                    _ => {}
                }
            }
            let len = file.len() as u64;
            let scanned =
                xaso_record::scan::scan(&mut std::io::Cursor::new(file), len).expect("scans");
            let audio = scanned.tracks[1].track_id;
            let durations: Vec<u32> = scanned
                .fragments
                .iter()
                .flat_map(|f| &f.trafs)
                .filter(|t| t.track_id == audio)
                .flat_map(|t| t.samples.iter().map(|x| x.duration))
                .collect();
            assert!(!durations.is_empty());
            assert!(
                durations.iter().all(|d| *d > 0),
                "{}: audio durations {durations:?}",
                m.path
            );
        }
        // The frames before the first keyframe's audio and the late ones at 10 s.
        assert!(rs.frames_skipped > 0);
    }

    #[test]
    fn waits_for_a_keyframe_and_restarts_on_a_new_resolution() {
        let t0 = 1_795_000_000_000;
        let mut rs = RunState::new(cfg(), vec![None, None]);
        // Start mid-GOP: the first 5 frames are skipped.
        let mut out = Vec::new();
        for i in 20..50 {
            let p = (i == 20).then(|| video(640));
            out.extend(rs.on_frame(
                frame(0, i * 3600, i % 25 == 0, Bytes::from_static(&[1; 8]), p),
                t0 + i * 40,
            ));
        }
        assert_eq!(rs.frames_skipped, 5);
        // The camera switches to 1280 wide at a keyframe.
        out.extend(rs.on_frame(
            frame(
                0,
                50 * 3600,
                true,
                Bytes::from_static(&[1; 8]),
                Some(video(1280)),
            ),
            t0 + 2000,
        ));
        rs.end_run(&mut out);
        let (metas, closes, v, _) = summary(&out);
        assert_eq!(metas.len(), 2);
        assert_ne!(metas[0].run_id, metas[1].run_id);
        assert_eq!((metas[0].width, metas[1].width), (640, 1280));
        assert_eq!((closes, v), (2, 26));
    }

    #[test]
    fn a_clock_jump_starts_a_new_run() {
        let t0 = 1_795_000_000_000;
        let mut rs = RunState::new(cfg(), vec![None]);
        let mut out = Vec::new();
        for i in 0..30 {
            out.extend(rs.on_frame(
                frame(
                    0,
                    i * 3600,
                    i % 25 == 0,
                    Bytes::from_static(&[1; 8]),
                    (i == 0).then(|| video(640)),
                ),
                t0 + i * 40,
            ));
        }
        // Timestamps go back (camera rebooted its clock) on a keyframe.
        out.extend(rs.on_frame(
            frame(0, 5, true, Bytes::from_static(&[1; 8]), None),
            t0 + 1200,
        ));
        out.extend(rs.on_frame(
            frame(0, 3605, false, Bytes::from_static(&[1; 8]), None),
            t0 + 1240,
        ));
        rs.end_run(&mut out);
        let (metas, closes, v, _) = summary(&out);
        assert_eq!((metas.len(), closes, v), (2, 2, 32));
        assert_eq!(metas[1].start_ms, t0 + 1200);
    }
}
