//! A time range of footage as one standard, non-fragmented MP4, planned rather than built:
//! [`plan`] reads only the segments' sample tables (from [`crate::scan`]) and returns the
//! file as [`Part`]s — bytes made here (`ftyp`, `moov`, the `mdat` header) and byte ranges
//! of the segment files — so the file can be streamed, and served with HTTP `Range`,
//! without being assembled in memory.
//!
//! The clip starts at the keyframe at or before the requested start; an edit list makes
//! players begin at the requested start exactly. Where footage is missing (a gap between
//! recordings), the last frame before the gap lasts until the next one, so the file's
//! timeline stays equal to wall-clock time.

use crate::boxes::{
    u16be, u32be, u64be, unity_matrix, write_box, write_full_box, write_hdlr,
    write_media_header_and_dinf,
};
use crate::scan::Scanned;
use bytes::Bytes;
use xaso_base::Codec;

/// One segment file, scanned, with the index the caller uses to name its file.
pub struct Source<'a> {
    pub file: usize,
    pub scan: &'a Scanned,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part {
    Bytes(Bytes),
    /// `len` bytes at `offset` of the caller's file number `file`.
    File {
        file: usize,
        offset: u64,
        len: u64,
    },
}

impl Part {
    pub fn len(&self) -> u64 {
        match self {
            Part::Bytes(b) => b.len() as u64,
            Part::File { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub parts: Vec<Part>,
    pub len: u64,
    /// What the file covers: from the requested start (or the first footage after it) to
    /// the end of the last frame included.
    pub start_ms: i64,
    pub end_ms: i64,
    /// Wall-clock time of the first frame in the file (the keyframe the clip starts at).
    pub keyframe_ms: i64,
    pub video_frames: u32,
    pub audio_frames: u32,
}

#[derive(Debug, PartialEq, Eq)]
pub enum ExportError {
    /// No video frame in the range.
    NoFootage,
    /// A segment lacks what export needs (e.g. `prft` timing).
    Unusable(&'static str),
}

impl std::fmt::Display for ExportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExportError::NoFootage => f.write_str("no footage in that range"),
            ExportError::Unusable(m) => write!(f, "a segment cannot be exported: {m}"),
        }
    }
}

impl std::error::Error for ExportError {}

#[derive(Clone, Copy, Debug)]
struct Smp {
    wall_ms: f64,
    duration: u32,
    size: u32,
    sync: bool,
    file: usize,
    offset: u64,
    /// Fragment sequence number, for interleaving.
    frag: usize,
}

struct TrackOut {
    codec: Codec,
    timescale: u32,
    sample_entry: Vec<u8>,
    width: u16,
    height: u16,
    samples: Vec<Smp>,
}

/// Plans the MP4 of `[start_ms, end_ms)` from `sources` (oldest first).
pub fn plan(sources: &[Source<'_>], start_ms: i64, end_ms: i64) -> Result<Plan, ExportError> {
    let mut video: Option<TrackOut> = None;
    let mut audio: Option<TrackOut> = None;
    let mut frag_no = 0usize;
    for src in sources {
        let s = src.scan;
        let Some(vi) = s
            .tracks
            .iter()
            .position(|t| t.codec.is_some_and(Codec::is_video))
        else {
            continue;
        };
        let vt = &s.tracks[vi];
        if let Some(v) = &video
            && v.sample_entry != vt.sample_entry
        {
            // New parameters (resolution): this file ends where they change.
            break;
        }
        let at = s
            .tracks
            .iter()
            .position(|t| t.codec.is_some_and(|c| !c.is_video()));
        video.get_or_insert_with(|| TrackOut {
            codec: vt.codec.expect("video"),
            timescale: vt.timescale,
            sample_entry: vt.sample_entry.clone(),
            width: vt.width,
            height: vt.height,
            samples: Vec::new(),
        });
        if let Some(ai) = at {
            let t = &s.tracks[ai];
            if audio
                .as_ref()
                .is_none_or(|a| a.sample_entry == t.sample_entry)
            {
                audio.get_or_insert_with(|| TrackOut {
                    codec: t.codec.expect("audio"),
                    timescale: t.timescale,
                    sample_entry: t.sample_entry.clone(),
                    width: 0,
                    height: 0,
                    samples: Vec::new(),
                });
            }
        }
        for fr in &s.fragments {
            frag_no += 1;
            let wall = fr
                .wall_ms
                .ok_or(ExportError::Unusable("fragment without prft"))?;
            let Some(vtraf) = fr.trafs.iter().find(|t| t.track_id == vt.track_id) else {
                continue;
            };
            // Wall time of decode time 0 of this fragment's timeline, in ms.
            let origin = wall as f64 - vtraf.base_dts as f64 * 1000.0 / f64::from(vt.timescale);
            for traf in &fr.trafs {
                let (track, ts) = if traf.track_id == vt.track_id {
                    (video.as_mut(), vt.timescale)
                } else if at.is_some_and(|ai| s.tracks[ai].track_id == traf.track_id) {
                    (audio.as_mut(), s.tracks[at.expect("audio")].timescale)
                } else {
                    continue;
                };
                let Some(track) = track else { continue };
                let mut dts = traf.base_dts;
                for smp in &traf.samples {
                    track.samples.push(Smp {
                        wall_ms: origin + dts as f64 * 1000.0 / f64::from(ts),
                        duration: smp.duration,
                        size: smp.size,
                        sync: smp.is_sync,
                        file: src.file,
                        offset: smp.offset,
                        frag: frag_no,
                    });
                    dts += u64::from(smp.duration);
                }
            }
        }
    }
    let mut video = video.ok_or(ExportError::NoFootage)?;
    let (s, e) = (start_ms as f64, end_ms as f64);
    // First frame: the keyframe at or before the start, else the first keyframe after it.
    let first = video
        .samples
        .iter()
        .rposition(|x| x.sync && x.wall_ms <= s)
        .or_else(|| video.samples.iter().position(|x| x.sync && x.wall_ms >= s))
        .ok_or(ExportError::NoFootage)?;
    let last = video
        .samples
        .iter()
        .rposition(|x| x.wall_ms < e)
        .ok_or(ExportError::NoFootage)?;
    if last < first {
        return Err(ExportError::NoFootage);
    }
    video.samples = video.samples[first..=last].to_vec();
    let key_ms = video.samples[0].wall_ms;
    let clip_start = s.max(key_ms);
    let clip_end = {
        let l = video.samples.last().expect("non-empty");
        (l.wall_ms + f64::from(l.duration) * 1000.0 / f64::from(video.timescale)).min(e)
    };
    if clip_end <= s {
        return Err(ExportError::NoFootage); // all of it ends before the range begins
    }
    if let Some(a) = &mut audio {
        a.samples
            .retain(|x| x.wall_ms >= key_ms && x.wall_ms < clip_end);
    }
    let audio = audio.filter(|a| !a.samples.is_empty());
    let mut tracks = vec![video];
    tracks.extend(audio);
    for t in &mut tracks {
        stretch_over_gaps(t);
    }
    Ok(layout(&tracks, clip_start, clip_end, key_ms))
}

/// Makes each sample last until the next one starts (in wall time), so gaps between
/// recordings keep the file's timeline equal to wall-clock time.
fn stretch_over_gaps(t: &mut TrackOut) {
    let ts = f64::from(t.timescale);
    for i in 0..t.samples.len().saturating_sub(1) {
        let gap_ms = t.samples[i + 1].wall_ms - t.samples[i].wall_ms;
        let recorded = f64::from(t.samples[i].duration) * 1000.0 / ts;
        if gap_ms - recorded > 100.0 {
            t.samples[i].duration = (gap_ms * ts / 1000.0).round().min(f64::from(u32::MAX)) as u32;
        }
    }
}

struct Chunk {
    track: usize,
    file: usize,
    offset: u64,
    len: u64,
    samples: u32,
    frag: usize,
}

fn layout(tracks: &[TrackOut], clip_start: f64, clip_end: f64, key_ms: f64) -> Plan {
    // Chunks: runs of one track's samples that are contiguous in one file.
    let mut chunks: Vec<Chunk> = Vec::new();
    for (ti, t) in tracks.iter().enumerate() {
        for smp in &t.samples {
            match chunks.last_mut() {
                Some(c)
                    if c.track == ti
                        && c.file == smp.file
                        && c.offset + c.len == smp.offset
                        && c.frag == smp.frag =>
                {
                    c.len += u64::from(smp.size);
                    c.samples += 1;
                }
                _ => chunks.push(Chunk {
                    track: ti,
                    file: smp.file,
                    offset: smp.offset,
                    len: u64::from(smp.size),
                    samples: 1,
                    frag: smp.frag,
                }),
            }
        }
    }
    // Interleave as recorded: by fragment, video before audio.
    chunks.sort_by_key(|c| (c.frag, c.track));
    let data_len: u64 = chunks.iter().map(|c| c.len).sum();

    let mut ftyp = Vec::new();
    write_box(&mut ftyp, b"ftyp", |o| {
        o.extend_from_slice(b"isom");
        u32be(o, 0x200);
        for b in [b"isom", b"iso2", b"mp41"] {
            o.extend_from_slice(b);
        }
    });
    let duration_ms = (clip_end - clip_start).max(0.0).round() as u64;
    let moov_len = moov(tracks, &chunks, 0, clip_start, duration_ms, key_ms).len() as u64;
    let data_start = ftyp.len() as u64 + moov_len + 16;
    let moov_bytes = moov(tracks, &chunks, data_start, clip_start, duration_ms, key_ms);
    debug_assert_eq!(moov_bytes.len() as u64, moov_len);
    let mut head = ftyp;
    head.extend_from_slice(&moov_bytes);
    u32be(&mut head, 1);
    head.extend_from_slice(b"mdat");
    u64be(&mut head, 16 + data_len);
    let mut parts = vec![Part::Bytes(Bytes::from(head))];
    for c in &chunks {
        match parts.last_mut() {
            Some(Part::File { file, offset, len })
                if *file == c.file && *offset + *len == c.offset =>
            {
                *len += c.len
            }
            _ => parts.push(Part::File {
                file: c.file,
                offset: c.offset,
                len: c.len,
            }),
        }
    }
    let len = parts.iter().map(Part::len).sum();
    Plan {
        parts,
        len,
        start_ms: clip_start.round() as i64,
        end_ms: clip_end.round() as i64,
        keyframe_ms: key_ms.round() as i64,
        video_frames: tracks[0].samples.len() as u32,
        audio_frames: tracks.get(1).map_or(0, |a| a.samples.len() as u32),
    }
}

fn moov(
    tracks: &[TrackOut],
    chunks: &[Chunk],
    data_start: u64,
    clip_start: f64,
    duration_ms: u64,
    key_ms: f64,
) -> Vec<u8> {
    let mut out = Vec::new();
    write_box(&mut out, b"moov", |o| {
        write_full_box(o, b"mvhd", 1, 0, |o| {
            u64be(o, 0);
            u64be(o, 0);
            u32be(o, 1000);
            u64be(o, duration_ms);
            u32be(o, 0x0001_0000);
            u16be(o, 0x0100);
            o.extend_from_slice(&[0; 10]);
            unity_matrix(o);
            o.extend_from_slice(&[0; 24]);
            u32be(o, tracks.len() as u32 + 1);
        });
        // Chunk offsets in the output, in output order.
        let mut offsets = vec![Vec::new(); tracks.len()];
        let mut samples_per_chunk = vec![Vec::new(); tracks.len()];
        let mut at = data_start;
        for c in chunks {
            offsets[c.track].push(at);
            samples_per_chunk[c.track].push(c.samples);
            at += c.len;
        }
        for (ti, t) in tracks.iter().enumerate() {
            let first_ms = t.samples.first().map_or(key_ms, |x| x.wall_ms);
            // Presentation starts at the requested start: skip that much of the media.
            let media_time =
                ((clip_start - first_ms).max(0.0) * f64::from(t.timescale) / 1000.0).round() as u64;
            trak(
                o,
                ti as u32 + 1,
                t,
                &offsets[ti],
                &samples_per_chunk[ti],
                duration_ms,
                media_time,
            );
        }
    });
    out
}

fn trak(
    o: &mut Vec<u8>,
    id: u32,
    t: &TrackOut,
    offsets: &[u64],
    spc: &[u32],
    duration_ms: u64,
    media_time: u64,
) {
    let video = t.codec.is_video();
    let media_duration: u64 = t.samples.iter().map(|s| u64::from(s.duration)).sum();
    write_box(o, b"trak", |o| {
        write_full_box(o, b"tkhd", 1, 0x3, |o| {
            u64be(o, 0);
            u64be(o, 0);
            u32be(o, id);
            u32be(o, 0);
            u64be(o, duration_ms);
            u64be(o, 0);
            u16be(o, 0);
            u16be(o, u16::from(!video));
            u16be(o, if video { 0 } else { 0x0100 });
            u16be(o, 0);
            unity_matrix(o);
            u32be(o, u32::from(t.width) << 16);
            u32be(o, u32::from(t.height) << 16);
        });
        write_box(o, b"edts", |o| {
            write_full_box(o, b"elst", 1, 0, |o| {
                u32be(o, 1);
                u64be(o, duration_ms);
                u64be(o, media_time);
                u32be(o, 0x0001_0000);
            });
        });
        write_box(o, b"mdia", |o| {
            write_full_box(o, b"mdhd", 1, 0, |o| {
                u64be(o, 0);
                u64be(o, 0);
                u32be(o, t.timescale);
                u64be(o, media_duration);
                u16be(o, 0x55c4);
                u16be(o, 0);
            });
            write_hdlr(o, video);
            write_box(o, b"minf", |o| {
                write_media_header_and_dinf(o, video);
                write_box(o, b"stbl", |o| stbl(o, t, offsets, spc));
            });
        });
    });
}

fn stbl(o: &mut Vec<u8>, t: &TrackOut, offsets: &[u64], spc: &[u32]) {
    write_full_box(o, b"stsd", 0, 0, |o| {
        u32be(o, 1);
        o.extend_from_slice(&t.sample_entry);
    });
    // stts: run-length durations.
    let mut runs: Vec<(u32, u32)> = Vec::new();
    for s in &t.samples {
        match runs.last_mut() {
            Some((n, d)) if *d == s.duration => *n += 1,
            _ => runs.push((1, s.duration)),
        }
    }
    write_full_box(o, b"stts", 0, 0, |o| {
        u32be(o, runs.len() as u32);
        for (n, d) in &runs {
            u32be(o, *n);
            u32be(o, *d);
        }
    });
    if t.codec.is_video() {
        let syncs: Vec<u32> = t
            .samples
            .iter()
            .enumerate()
            .filter(|(_, s)| s.sync)
            .map(|(i, _)| i as u32 + 1)
            .collect();
        write_full_box(o, b"stss", 0, 0, |o| {
            u32be(o, syncs.len() as u32);
            for i in syncs {
                u32be(o, i);
            }
        });
    }
    // stsc: one entry wherever samples-per-chunk changes.
    let mut stsc: Vec<(u32, u32)> = Vec::new();
    for (i, &n) in spc.iter().enumerate() {
        if stsc.last().is_none_or(|&(_, m)| m != n) {
            stsc.push((i as u32 + 1, n));
        }
    }
    write_full_box(o, b"stsc", 0, 0, |o| {
        u32be(o, stsc.len() as u32);
        for (first, n) in stsc {
            u32be(o, first);
            u32be(o, n);
            u32be(o, 1);
        }
    });
    write_full_box(o, b"stsz", 0, 0, |o| {
        u32be(o, 0);
        u32be(o, t.samples.len() as u32);
        for s in &t.samples {
            u32be(o, s.size);
        }
    });
    write_full_box(o, b"co64", 0, 0, |o| {
        u32be(o, offsets.len() as u32);
        for &off in offsets {
            u64be(o, off);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fmp4::{Sample, SegmentWriter, TrackConfig, g711_sample_entry};
    use sha2::Digest;

    const T0: i64 = 1_795_000_000_000;

    fn tracks() -> Vec<TrackConfig> {
        let mut entry = Vec::new();
        write_box(&mut entry, b"avc1", |o| o.extend_from_slice(&[7; 78]));
        vec![
            TrackConfig {
                codec: Codec::H264,
                timescale: 90_000,
                sample_entry: entry,
                width: 640,
                height: 360,
            },
            TrackConfig {
                codec: Codec::Pcmu,
                timescale: 8000,
                sample_entry: g711_sample_entry(Codec::Pcmu, 8000, 1),
                width: 0,
                height: 0,
            },
        ]
    }

    /// A segment of `secs` s of 25 fps video (keyframe every second) and 20 ms audio,
    /// starting at wall time `start`.
    fn segment(start: i64, secs: u64) -> Vec<u8> {
        let mut w = SegmentWriter::new(tracks(), 500);
        let mut file = w.init_segment();
        for i in 0..secs * 25 {
            let v = Sample {
                track: 0,
                dts: i * 3600,
                is_sync: i % 25 == 0,
                data: Bytes::from(vec![(i % 200) as u8 + 1; 300]),
                wall_ms: start + i as i64 * 40,
            };
            if let Some(f) = w.push(v).unwrap() {
                file.extend_from_slice(&f.bytes.to_vec());
            }
            for j in 0..2 {
                let a = Sample {
                    track: 1,
                    dts: (i * 2 + j) * 160,
                    is_sync: true,
                    data: Bytes::from_static(&[0xff; 160]),
                    wall_ms: 0,
                };
                if let Some(f) = w.push(a).unwrap() {
                    file.extend_from_slice(&f.bytes.to_vec());
                }
            }
        }
        for f in w.finish() {
            file.extend_from_slice(&f.bytes.to_vec());
        }
        file
    }

    fn assemble(plan: &Plan, files: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in &plan.parts {
            match p {
                Part::Bytes(b) => out.extend_from_slice(b),
                Part::File { file, offset, len } => out
                    .extend_from_slice(&files[*file][*offset as usize..(*offset + *len) as usize]),
            }
        }
        assert_eq!(out.len() as u64, plan.len);
        out
    }

    fn plan_of(files: &[Vec<u8>], start: i64, end: i64) -> Result<Plan, ExportError> {
        let scans: Vec<Scanned> = files
            .iter()
            .map(|f| crate::scan::scan(&mut std::io::Cursor::new(f), f.len() as u64).unwrap())
            .collect();
        let sources: Vec<Source<'_>> = scans
            .iter()
            .enumerate()
            .map(|(i, s)| Source { file: i, scan: s })
            .collect();
        plan(&sources, start, end)
    }

    #[test]
    fn starts_at_the_keyframe_before_and_covers_the_range() {
        let files = vec![segment(T0, 10), segment(T0 + 10_000, 10)];
        let p = plan_of(&files, T0 + 3_500, T0 + 13_500).unwrap();
        assert_eq!(p.keyframe_ms, T0 + 3_000);
        assert_eq!((p.start_ms, p.end_ms), (T0 + 3_500, T0 + 13_500));
        // From the keyframe at 3 s to the last frame starting before 13.5 s (at 13.48 s).
        assert_eq!(p.video_frames, (13_480 - 3_000) / 40 + 1);
        assert_eq!(p.audio_frames, (13_500 - 3_000) / 20);
        let bytes = assemble(&p, &files);
        assert_eq!(&bytes[4..8], b"ftyp");
        let be = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let moov_at = be(0);
        assert_eq!(&bytes[moov_at + 4..moov_at + 8], b"moov");
        let data = moov_at + be(moov_at) + 16;
        assert_eq!(&bytes[data - 12..data - 8], b"mdat");
        assert_eq!(
            data as u64 + p.parts[1..].iter().map(Part::len).sum::<u64>(),
            p.len
        );
        // The keyframe's bytes (frame 75, filled with 76) are in the file.
        assert!(
            bytes[data..]
                .windows(300)
                .any(|w| w.iter().all(|&b| b == 76))
        );
    }

    #[test]
    fn nothing_in_range_is_an_error() {
        let files = vec![segment(T0, 4)];
        assert_eq!(
            plan_of(&files, T0 - 60_000, T0 - 30_000),
            Err(ExportError::NoFootage)
        );
        assert_eq!(
            plan_of(&files, T0 + 60_000, T0 + 90_000),
            Err(ExportError::NoFootage)
        );
        assert_eq!(plan_of(&[], T0, T0 + 1000), Err(ExportError::NoFootage));
    }

    #[test]
    fn a_gap_keeps_the_timeline_equal_to_wall_time() {
        let files = vec![segment(T0, 5), segment(T0 + 9_000, 5)];
        let p = plan_of(&files, T0 + 2_000, T0 + 12_000).unwrap();
        assert_eq!(p.video_frames, (5_000 - 2_000) / 40 + (12_000 - 9_000) / 40);
        assert_eq!((p.start_ms, p.end_ms), (T0 + 2_000, T0 + 12_000));
    }

    /// Golden digest: the exact bytes exported for a fixed input. If this changes, the
    /// output format changed: bump `EXPORT_FORMAT` in `src/api/recordings.rs` (it is part of
    /// every export's ETag, so browsers and proxies do not reuse old copies), then update
    /// the digest here.
    #[test]
    fn golden_digest() {
        let files = vec![segment(T0, 6), segment(T0 + 6_000, 6)];
        let p = plan_of(&files, T0 + 1_500, T0 + 9_500).unwrap();
        let digest = hex::encode(sha2::Sha256::digest(assemble(&p, &files)));
        assert_eq!(
            digest,
            "63501cfe66f341f776748d86efd06d253faa10f1af324a79b135a52da413855a"
        );
    }
}
