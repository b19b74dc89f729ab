//! Writing segment files: an init part (`ftyp` + `moov` with one track per camera stream)
//! followed by fragments (`prft` + `moof` + `mdat`) of at most `fragment_ms` each, cut
//! before every video keyframe when possible.
//!
//! Each sample is held back until the next sample of its track arrives, because its
//! duration is the difference of their decode times; so a fragment is emitted one sample
//! late, and [`SegmentWriter::finish`] flushes what is held.

use crate::boxes::{
    u16be, u32be, u64be, unity_matrix, write_box, write_full_box, write_hdlr,
    write_media_header_and_dinf,
};
use bytes::Bytes;
pub use xaso_base::Codec;

/// One track of a segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackConfig {
    pub codec: Codec,
    /// Units per second of decode times and durations (90 000 for video, the sample rate
    /// for audio).
    pub timescale: u32,
    /// The whole sample entry box for `stsd` (`avc1`, `hvc1`, `mp4a`, `ulaw`, `alaw`).
    pub sample_entry: Vec<u8>,
    /// Video only: displayed size.
    pub width: u16,
    pub height: u16,
}

/// A G.711 sample entry (`ulaw` / `alaw`, ISO/IEC 14496-12 AudioSampleEntry).
pub fn g711_sample_entry(codec: Codec, sample_rate: u32, channels: u16) -> Vec<u8> {
    let fourcc = if codec == Codec::Pcma {
        b"alaw"
    } else {
        b"ulaw"
    };
    let mut out = Vec::new();
    write_box(&mut out, fourcc, |o| {
        o.extend_from_slice(&[0; 6]);
        u16be(o, 1); // data_reference_index
        u64be(o, 0); // reserved
        u16be(o, channels);
        u16be(o, 16); // samplesize
        u32be(o, 0); // pre_defined, reserved
        u32be(o, sample_rate.min(65535) << 16);
    });
    out
}

/// An `avc1` sample entry (ISO/IEC 14496-15 VisualSampleEntry) around an `avcC` record.
pub fn avc1_sample_entry(width: u16, height: u16, avcc: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    write_box(&mut out, b"avc1", |o| {
        o.extend_from_slice(&[0; 6]);
        u16be(o, 1); // data_reference_index
        o.extend_from_slice(&[0; 16]); // pre_defined, reserved
        u16be(o, width);
        u16be(o, height);
        u32be(o, 0x0048_0000); // 72 dpi
        u32be(o, 0x0048_0000);
        u32be(o, 0);
        u16be(o, 1); // frame_count
        o.extend_from_slice(&[0; 32]); // compressorname
        u16be(o, 0x0018); // depth
        u16be(o, 0xffff); // pre_defined = -1
        write_box(o, b"avcC", |o| o.extend_from_slice(avcc));
    });
    out
}

/// A sample (an access unit of video, a frame of audio) to record.
#[derive(Clone, Debug)]
pub struct Sample {
    /// Index into the writer's tracks.
    pub track: usize,
    /// Decode time in the track's timescale, counted from the segment's start.
    pub dts: u64,
    pub is_sync: bool,
    /// Video: length-prefixed NAL units (4-byte lengths). Audio: one raw frame.
    pub data: Bytes,
    /// Wall-clock time of this sample (ms since the Unix epoch), kept in `prft` boxes.
    pub wall_ms: i64,
}

/// A fragment's bytes: the boxes written here, then the samples as they came (shared with
/// the caller's buffers, not copied; the disk writer hands them to one vectored write).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FragmentBytes {
    /// `prft` + `moof` + the `mdat` header.
    pub head: Vec<u8>,
    /// The `mdat` payload, sample by sample.
    pub data: Vec<Bytes>,
}

impl FragmentBytes {
    pub fn len(&self) -> usize {
        self.head.len() + self.data.iter().map(Bytes::len).sum::<usize>()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The whole fragment in one buffer.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len());
        v.extend_from_slice(&self.head);
        for d in &self.data {
            v.extend_from_slice(d);
        }
        v
    }

    /// Writes it all, in as few `writev` calls as the kernel allows.
    pub fn write_to(&self, w: &mut impl std::io::Write) -> std::io::Result<()> {
        let mut slices: Vec<std::io::IoSlice<'_>> = std::iter::once(self.head.as_slice())
            .chain(self.data.iter().map(|d| d.as_ref()))
            .filter(|s| !s.is_empty())
            .map(std::io::IoSlice::new)
            .collect();
        let mut rest = slices.as_mut_slice();
        while !rest.is_empty() {
            match w.write_vectored(rest) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => std::io::IoSlice::advance_slices(&mut rest, n),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// What a completed fragment holds, for the index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fragment {
    /// `prft` + `moof` + `mdat`, to append to the file.
    pub bytes: FragmentBytes,
    /// Decode time of the primary track's first sample and the fragment's duration, both in
    /// the primary track's timescale.
    pub start_dts: u64,
    pub duration: u64,
    pub wall_ms: i64,
    /// Whether the primary (video) track starts with a keyframe here.
    pub starts_with_key: bool,
    /// Samples per track.
    pub samples: Vec<u32>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum WriteError {
    /// Decode time went backwards on a track (the caller should start a new segment).
    NonMonotonic {
        track: usize,
    },
    /// Two samples too far apart for a 32-bit duration.
    Gap {
        track: usize,
    },
    BadTrack(usize),
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteError::NonMonotonic { track } => {
                write!(f, "decode time went backwards on track {track}")
            }
            WriteError::Gap { track } => write!(f, "gap too long between samples on track {track}"),
            WriteError::BadTrack(t) => write!(f, "no track {t}"),
        }
    }
}

impl std::error::Error for WriteError {}

struct Ready {
    dts: u64,
    duration: u32,
    is_sync: bool,
    data: Bytes,
    wall_ms: i64,
}

pub struct SegmentWriter {
    tracks: Vec<TrackConfig>,
    /// The track whose time paces fragments: the video track, else the first.
    primary: usize,
    fragment_ticks: u64,
    pending: Vec<Option<Sample>>,
    last_duration: Vec<u32>,
    frag: Vec<Vec<Ready>>,
    seq: u32,
}

/// `sample_flags` of `trun` (ISO/IEC 14496-12 8.8.3.1).
const FLAGS_SYNC: u32 = 0x0200_0000; // depends on no other sample
const FLAGS_NON_SYNC: u32 = 0x0101_0000; // depends on others; is_non_sync_sample

impl SegmentWriter {
    /// `fragment_ms`: a fragment is closed once it holds this much of the primary track.
    pub fn new(tracks: Vec<TrackConfig>, fragment_ms: u32) -> Self {
        assert!(!tracks.is_empty(), "a segment needs a track");
        let primary = tracks.iter().position(|t| t.codec.is_video()).unwrap_or(0);
        let fragment_ticks = u64::from(tracks[primary].timescale) * u64::from(fragment_ms) / 1000;
        let n = tracks.len();
        SegmentWriter {
            tracks,
            primary,
            fragment_ticks: fragment_ticks.max(1),
            pending: (0..n).map(|_| None).collect(),
            last_duration: vec![0; n],
            frag: (0..n).map(|_| Vec::new()).collect(),
            seq: 0,
        }
    }

    pub fn tracks(&self) -> &[TrackConfig] {
        &self.tracks
    }

    pub fn primary(&self) -> usize {
        self.primary
    }

    /// `ftyp` + `moov`: the start of the file.
    pub fn init_segment(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1024);
        write_box(&mut out, b"ftyp", |o| {
            o.extend_from_slice(b"isom");
            u32be(o, 0x200);
            for b in [b"isom", b"iso6", b"iso2", b"mp41"] {
                o.extend_from_slice(b);
            }
        });
        write_box(&mut out, b"moov", |o| {
            write_full_box(o, b"mvhd", 0, 0, |o| {
                u32be(o, 0); // creation_time
                u32be(o, 0); // modification_time
                u32be(o, 1000);
                u32be(o, 0); // duration: fragmented
                u32be(o, 0x0001_0000); // rate
                u16be(o, 0x0100); // volume
                o.extend_from_slice(&[0; 10]);
                unity_matrix(o);
                o.extend_from_slice(&[0; 24]);
                u32be(o, self.tracks.len() as u32 + 1); // next_track_ID
            });
            for (i, t) in self.tracks.iter().enumerate() {
                write_trak(o, i as u32 + 1, t);
            }
            write_box(o, b"mvex", |o| {
                for i in 0..self.tracks.len() {
                    write_full_box(o, b"trex", 0, 0, |o| {
                        u32be(o, i as u32 + 1);
                        u32be(o, 1); // default_sample_description_index
                        u32be(o, 0);
                        u32be(o, 0);
                        u32be(o, 0);
                    });
                }
            });
        });
        out
    }

    /// Adds a sample; returns a fragment when one is complete.
    pub fn push(&mut self, s: Sample) -> Result<Option<Fragment>, WriteError> {
        let t = s.track;
        if t >= self.tracks.len() {
            return Err(WriteError::BadTrack(t));
        }
        let Some(prev) = self.pending[t].take() else {
            self.pending[t] = Some(s);
            return Ok(None);
        };
        if s.dts < prev.dts {
            self.pending[t] = Some(prev);
            return Err(WriteError::NonMonotonic { track: t });
        }
        let Ok(duration) = u32::try_from(s.dts - prev.dts) else {
            self.pending[t] = Some(prev);
            return Err(WriteError::Gap { track: t });
        };
        self.last_duration[t] = duration;
        let out = self.append(t, prev, duration);
        self.pending[t] = Some(s);
        Ok(out)
    }

    /// Flushes every held sample (with its track's last duration): the last fragments.
    pub fn finish(&mut self) -> Vec<Fragment> {
        let mut out = Vec::new();
        for t in 0..self.tracks.len() {
            if let Some(p) = self.pending[t].take() {
                let d = match self.last_duration[t] {
                    0 if self.tracks[t].codec.is_video() => self.tracks[t].timescale / 25,
                    0 => 1024,
                    d => d,
                };
                out.extend(self.append(t, p, d));
            }
        }
        out.extend(self.flush());
        out
    }

    /// The samples whose durations are known, as a fragment now (live streaming: a fragment
    /// per frame, one frame late, rather than per `fragment_ms`).
    pub fn take_fragment(&mut self) -> Option<Fragment> {
        self.flush()
    }

    /// Decode time just past the last sample of the primary track that has a known duration.
    pub fn held_primary_dts(&self) -> Option<u64> {
        self.pending[self.primary].as_ref().map(|s| s.dts)
    }

    fn append(&mut self, t: usize, s: Sample, duration: u32) -> Option<Fragment> {
        let mut out = None;
        if t == self.primary && !self.frag[t].is_empty() {
            let first = self.frag[t][0].dts;
            let full = s.dts - first >= self.fragment_ticks;
            let key = s.is_sync && self.tracks[t].codec.is_video();
            if full || key {
                out = self.flush();
            }
        }
        self.frag[t].push(Ready {
            dts: s.dts,
            duration,
            is_sync: s.is_sync,
            data: s.data,
            wall_ms: s.wall_ms,
        });
        out
    }

    fn flush(&mut self) -> Option<Fragment> {
        let p = self.primary;
        let lead = self.frag[p]
            .first()
            .or_else(|| self.frag.iter().find_map(|f| f.first()))?;
        let (start_dts, wall_ms, starts_with_key) = (lead.dts, lead.wall_ms, lead.is_sync);
        self.seq += 1;
        let mut out = Vec::new();
        // prft: this fragment's first primary sample was at this wall-clock time.
        write_full_box(&mut out, b"prft", 1, 0, |o| {
            u32be(o, p as u32 + 1);
            u64be(o, unix_ms_to_ntp(wall_ms));
            u64be(o, start_dts);
        });
        let moof_start = out.len();
        let mut offset_fields = Vec::new();
        write_box(&mut out, b"moof", |o| {
            write_full_box(o, b"mfhd", 0, 0, |o| u32be(o, self.seq));
            for (i, samples) in self.frag.iter().enumerate() {
                let Some(first) = samples.first() else {
                    continue;
                };
                write_box(o, b"traf", |o| {
                    // default-base-is-moof: data offsets count from the moof's first byte.
                    write_full_box(o, b"tfhd", 0, 0x02_0000, |o| u32be(o, i as u32 + 1));
                    write_full_box(o, b"tfdt", 1, 0, |o| u64be(o, first.dts));
                    write_full_box(o, b"trun", 0, 0x000701, |o| {
                        u32be(o, samples.len() as u32);
                        offset_fields.push(o.len());
                        u32be(o, 0); // data_offset, patched below
                        for s in samples {
                            u32be(o, s.duration);
                            u32be(o, s.data.len() as u32);
                            u32be(
                                o,
                                if s.is_sync {
                                    FLAGS_SYNC
                                } else {
                                    FLAGS_NON_SYNC
                                },
                            );
                        }
                    });
                });
            }
        });
        let moof_len = out.len() - moof_start;
        let data_len: usize = self.frag.iter().flatten().map(|s| s.data.len()).sum();
        let mut data_offset = moof_len + 8;
        let mut fields = offset_fields.into_iter();
        for samples in self.frag.iter().filter(|s| !s.is_empty()) {
            let at = fields.next().expect("one field per traf");
            out[at..at + 4].copy_from_slice(&(data_offset as u32).to_be_bytes());
            data_offset += samples.iter().map(|s| s.data.len()).sum::<usize>();
        }
        u32be(&mut out, (8 + data_len) as u32);
        out.extend_from_slice(b"mdat");
        let duration = self.frag[p].iter().map(|s| u64::from(s.duration)).sum();
        let samples = self.frag.iter().map(|f| f.len() as u32).collect();
        let data = self
            .frag
            .iter_mut()
            .flat_map(|f| f.drain(..).map(|s| s.data))
            .collect();
        Some(Fragment {
            bytes: FragmentBytes { head: out, data },
            start_dts,
            duration,
            wall_ms,
            starts_with_key,
            samples,
        })
    }
}

fn write_trak(o: &mut Vec<u8>, id: u32, t: &TrackConfig) {
    let video = t.codec.is_video();
    write_box(o, b"trak", |o| {
        write_full_box(o, b"tkhd", 0, 0x7, |o| {
            u32be(o, 0);
            u32be(o, 0);
            u32be(o, id);
            u32be(o, 0);
            u32be(o, 0); // duration
            u64be(o, 0);
            u16be(o, 0); // layer
            u16be(o, u16::from(!video)); // alternate_group
            u16be(o, if video { 0 } else { 0x0100 });
            u16be(o, 0);
            unity_matrix(o);
            u32be(o, u32::from(t.width) << 16);
            u32be(o, u32::from(t.height) << 16);
        });
        write_box(o, b"mdia", |o| {
            write_full_box(o, b"mdhd", 0, 0, |o| {
                u32be(o, 0);
                u32be(o, 0);
                u32be(o, t.timescale);
                u32be(o, 0);
                u16be(o, 0x55c4); // "und"
                u16be(o, 0);
            });
            write_hdlr(o, video);
            write_box(o, b"minf", |o| {
                write_media_header_and_dinf(o, video);
                write_box(o, b"stbl", |o| {
                    write_full_box(o, b"stsd", 0, 0, |o| {
                        u32be(o, 1);
                        o.extend_from_slice(&t.sample_entry);
                    });
                    for b in [b"stts", b"stsc", b"stco"] {
                        write_full_box(o, b, 0, 0, |o| u32be(o, 0));
                    }
                    write_full_box(o, b"stsz", 0, 0, |o| u64be(o, 0));
                });
            });
        });
    });
}

/// The RFC 6381 `codecs` value of a video sample entry (`avc1.64001f`, `hvc1.1.6.L93.B0`),
/// as Media Source Extensions want it; `None` for other entries or a malformed one.
pub fn rfc6381_codec(entry: &[u8]) -> Option<String> {
    // box header (8) + SampleEntry (8) + VisualSampleEntry fields (70), then child boxes.
    let fourcc: [u8; 4] = entry.get(4..8)?.try_into().ok()?;
    let mut children = entry.get(86..)?;
    let want = match &fourcc {
        b"avc1" | b"avc3" => b"avcC",
        b"hvc1" | b"hev1" => b"hvcC",
        _ => return None,
    };
    let config = loop {
        let size = u32::from_be_bytes(children.get(..4)?.try_into().ok()?) as usize;
        if size < 8 || size > children.len() {
            return None;
        }
        if &children[4..8] == want {
            break &children[8..size];
        }
        children = &children[size..];
    };
    let name = std::str::from_utf8(&fourcc).ok()?;
    if want == b"avcC" {
        let c = config.get(1..4)?;
        return Some(format!("{name}.{:02x}{:02x}{:02x}", c[0], c[1], c[2]));
    }
    // ISO/IEC 14496-15 annex E: profile space and idc, compatibility flags (bit-reversed),
    // tier and level, then the constraint bytes without trailing zeros.
    let c = config.get(..13)?;
    let space = ["", "A", "B", "C"][usize::from(c[1] >> 6)];
    let tier = if c[1] & 0x20 != 0 { 'H' } else { 'L' };
    let compat = u32::from_be_bytes(c[2..6].try_into().ok()?).reverse_bits();
    let mut s = format!("{name}.{space}{}.{compat:x}.{tier}{}", c[1] & 0x1f, c[12]);
    let constraints = &c[6..12];
    let used = constraints
        .iter()
        .rposition(|&b| b != 0)
        .map_or(0, |i| i + 1);
    for b in &constraints[..used] {
        s.push_str(&format!(".{b:X}"));
    }
    Some(s)
}

/// Seconds from 1900 (NTP) to 1970 (Unix).
const NTP_UNIX_OFFSET_SECS: u64 = 2_208_988_800;

pub fn unix_ms_to_ntp(ms: i64) -> u64 {
    let ms = u64::try_from(ms).unwrap_or(0);
    let secs = ms / 1000 + NTP_UNIX_OFFSET_SECS;
    let frac = ((ms % 1000) << 32) / 1000;
    (secs << 32) | frac
}

pub fn ntp_to_unix_ms(ntp: u64) -> i64 {
    let secs = (ntp >> 32).saturating_sub(NTP_UNIX_OFFSET_SECS);
    let ms = ((ntp & 0xffff_ffff) * 1000 + (1 << 31)) >> 32;
    (secs * 1000 + ms) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn video_track() -> TrackConfig {
        // A placeholder avc1 entry is enough for box structure tests; ffprobe checks in the
        // binary's tests use real parameters from a camera.
        let mut entry = Vec::new();
        write_box(&mut entry, b"avc1", |o| o.extend_from_slice(&[0; 78]));
        TrackConfig {
            codec: Codec::H264,
            timescale: 90_000,
            sample_entry: entry,
            width: 640,
            height: 360,
        }
    }

    fn entry(fourcc: &[u8; 4], config_fourcc: &[u8; 4], config: &[u8]) -> Vec<u8> {
        let mut entry = Vec::new();
        write_box(&mut entry, fourcc, |o| {
            o.extend_from_slice(&[0; 78]);
            write_box(o, config_fourcc, |o| o.extend_from_slice(config));
        });
        entry
    }

    #[test]
    fn avc1_entries_describe_their_stream() {
        let e = avc1_sample_entry(640, 360, &[1, 0x42, 0xc0, 0x1e, 0xff]);
        assert_eq!(&e[4..8], b"avc1");
        assert_eq!(
            &e[32..36],
            &[2, 128, 1, 104],
            "640x360 where MSE readers look"
        );
        assert_eq!(rfc6381_codec(&e).as_deref(), Some("avc1.42c01e"));
    }

    #[test]
    fn codec_strings_for_media_source() {
        let avc = entry(b"avc1", b"avcC", &[1, 0x64, 0x00, 0x1f, 0xff]);
        assert_eq!(rfc6381_codec(&avc).as_deref(), Some("avc1.64001f"));
        // Main profile, compatibility flags 0x60000000 (reversed: 6), level 3.1 (93),
        // constraint byte 0xb0: the string browsers document as "hvc1.1.6.L93.B0".
        let mut hvcc = vec![1, 0x01, 0x60, 0, 0, 0, 0xb0, 0, 0, 0, 0, 0, 93];
        hvcc.extend_from_slice(&[0xf0, 0, 0xfc]);
        let hevc = entry(b"hvc1", b"hvcC", &hvcc);
        assert_eq!(rfc6381_codec(&hevc).as_deref(), Some("hvc1.1.6.L93.B0"));
        // Not video, truncated, or a child box overrunning its parent: no string.
        assert_eq!(
            rfc6381_codec(&g711_sample_entry(Codec::Pcmu, 8000, 1)),
            None
        );
        assert_eq!(rfc6381_codec(&avc[..90]), None);
        let mut bad = avc.clone();
        bad[89] = 0xff;
        assert_eq!(rfc6381_codec(&bad), None);
        assert_eq!(rfc6381_codec(&[]), None);
    }

    #[test]
    fn ntp_round_trip() {
        for ms in [0i64, 1_795_000_000_123, 1_795_000_000_999] {
            assert_eq!(ntp_to_unix_ms(unix_ms_to_ntp(ms)), ms);
        }
    }

    #[test]
    fn fragments_cut_at_keyframes_and_by_duration() {
        let audio = TrackConfig {
            codec: Codec::Pcmu,
            timescale: 8000,
            sample_entry: g711_sample_entry(Codec::Pcmu, 8000, 1),
            width: 0,
            height: 0,
        };
        let mut w = SegmentWriter::new(vec![video_track(), audio], 1000);
        let mut frags = Vec::new();
        // 5 s of 25 fps video with a keyframe every 2 s, and 20 ms audio frames.
        for i in 0..125u64 {
            let v = Sample {
                track: 0,
                dts: i * 3600,
                is_sync: i % 50 == 0,
                data: Bytes::from(vec![i as u8; 100]),
                wall_ms: 1_000 + (i as i64) * 40,
            };
            frags.extend(w.push(v).unwrap());
            for j in 0..2 {
                let a = Sample {
                    track: 1,
                    dts: (i * 2 + j) * 160,
                    is_sync: true,
                    data: Bytes::from_static(&[0xff; 160]),
                    wall_ms: 0,
                };
                frags.extend(w.push(a).unwrap());
            }
        }
        frags.extend(w.finish());
        let starts: Vec<u64> = frags.iter().map(|f| f.start_dts / 90).collect();
        // Cut at 1 s (duration), at 2 s (keyframe), 3 s, 4 s (keyframe).
        assert_eq!(starts, vec![0, 1000, 2000, 3000, 4000]);
        assert_eq!(frags.iter().map(|f| f.samples[0]).sum::<u32>(), 125);
        assert_eq!(frags.iter().map(|f| f.samples[1]).sum::<u32>(), 250);
        assert!(frags[0].starts_with_key && !frags[1].starts_with_key && frags[2].starts_with_key);
        assert_eq!(frags[1].wall_ms, 2_000);
        assert_eq!(frags.iter().map(|f| f.duration).sum::<u64>(), 125 * 3600);
        assert!(w.finish().is_empty());
    }

    #[test]
    fn backwards_time_is_an_error_not_a_panic() {
        let mut w = SegmentWriter::new(vec![video_track()], 1000);
        let s = |dts| Sample {
            track: 0,
            dts,
            is_sync: true,
            data: Bytes::new(),
            wall_ms: 0,
        };
        w.push(s(1000)).unwrap();
        assert_eq!(
            w.push(s(10)).unwrap_err(),
            WriteError::NonMonotonic { track: 0 }
        );
        assert_eq!(
            w.push(s(1000 + (1 << 33))).unwrap_err(),
            WriteError::Gap { track: 0 }
        );
        assert_eq!(
            w.push(Sample { track: 3, ..s(0) }).unwrap_err(),
            WriteError::BadTrack(3)
        );
        w.push(s(4600)).unwrap();
        let last: Vec<Vec<u32>> = w.finish().into_iter().map(|f| f.samples).collect();
        assert_eq!(last, vec![vec![1], vec![1]], "two keyframes: two fragments");
    }
}
