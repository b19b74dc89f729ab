//! Reading segment files back: the tracks from `moov`, and every complete fragment with its
//! samples. A file cut short (a crash mid-write) scans up to its last complete fragment;
//! [`Scanned::valid_len`] is where to truncate it.
//!
//! Reads box headers and `moof`s only, seeking over `mdat` payloads, so scanning a segment
//! costs a few kilobytes of reads per second of footage. Never panics on malformed input.

use crate::boxes::{Reader, parse_header};
use crate::fmp4::{Codec, ntp_to_unix_ms};
use std::io::{Read, Seek, SeekFrom};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScannedTrack {
    pub track_id: u32,
    pub codec: Option<Codec>,
    /// The first `stsd` entry, a whole box (`avc1`, `mp4a`, ...).
    pub sample_entry: Vec<u8>,
    pub timescale: u32,
    pub width: u16,
    pub height: u16,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SampleInfo {
    pub duration: u32,
    pub size: u32,
    pub is_sync: bool,
    /// Absolute position of the sample's bytes in the file.
    pub offset: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScannedTraf {
    pub track_id: u32,
    pub base_dts: u64,
    pub samples: Vec<SampleInfo>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScannedFragment {
    /// Where the fragment (its `prft`, else its `moof`) starts, and where its `mdat` ends.
    pub offset: u64,
    pub end: u64,
    /// From `prft`: wall-clock time of the first sample of `prft_track` (ms since the epoch).
    pub wall_ms: Option<i64>,
    pub prft_track: Option<u32>,
    pub trafs: Vec<ScannedTraf>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scanned {
    pub tracks: Vec<ScannedTrack>,
    /// End of `ftyp` + `moov`.
    pub init_len: u64,
    pub fragments: Vec<ScannedFragment>,
    /// Length of the complete part of the file: everything after it is a partial tail.
    pub valid_len: u64,
}

#[derive(Debug)]
pub enum ScanError {
    Io(std::io::Error),
    /// The file does not start with a usable `ftyp` + `moov`: nothing in it can be read.
    NoInit(String),
}

impl std::fmt::Display for ScanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScanError::Io(e) => write!(f, "I/O error: {e}"),
            ScanError::NoInit(m) => write!(f, "not a segment file: {m}"),
        }
    }
}

impl std::error::Error for ScanError {}

impl From<std::io::Error> for ScanError {
    fn from(e: std::io::Error) -> Self {
        ScanError::Io(e)
    }
}

/// Largest `moov`/`moof`/`prft` read into memory; anything bigger is not ours.
const MAX_META_BOX: u64 = 16 << 20;

/// How much is read at once: a fragment's `prft`, `moof` and `mdat` header usually fit, so
/// scanning costs about one read per fragment.
const WINDOW: usize = 64 << 10;

/// Positioned reads through a window of the file.
struct Window<'a, R> {
    r: &'a mut R,
    buf: Vec<u8>,
    at: u64,
}

impl<R: Read + Seek> Window<'_, R> {
    /// `[at, at + n)`, or less if the file ends first.
    fn read(&mut self, at: u64, n: usize) -> std::io::Result<Vec<u8>> {
        let end = self.at + self.buf.len() as u64;
        if at >= self.at && at + n as u64 <= end {
            let s = (at - self.at) as usize;
            return Ok(self.buf[s..s + n].to_vec());
        }
        self.r.seek(SeekFrom::Start(at))?;
        self.buf.clear();
        (&mut *self.r)
            .take(n.max(WINDOW) as u64)
            .read_to_end(&mut self.buf)?;
        self.at = at;
        Ok(self.buf[..n.min(self.buf.len())].to_vec())
    }
}

/// Scans a segment of `file_len` bytes.
pub fn scan<R: Read + Seek>(r: &mut R, file_len: u64) -> Result<Scanned, ScanError> {
    let r = &mut Window {
        r,
        buf: Vec::new(),
        at: 0,
    };
    let mut pos = 0u64;
    let mut tracks = None;
    // ftyp, then moov.
    while tracks.is_none() {
        let (fourcc, body, next) = match read_box(r, pos, file_len)? {
            Some(b) => b,
            None => return Err(ScanError::NoInit("file ends before moov".into())),
        };
        match &fourcc {
            b"ftyp" | b"free" | b"skip" => {}
            b"moov" => tracks = Some(parse_moov(&body).map_err(|e| ScanError::NoInit(e.into()))?),
            other => {
                return Err(ScanError::NoInit(format!(
                    "unexpected {:?} box before moov",
                    String::from_utf8_lossy(other)
                )));
            }
        }
        pos = next;
    }
    let tracks = tracks.expect("loop ends with moov");
    let init_len = pos;
    let mut fragments = Vec::new();
    let mut valid_len = pos;
    let mut prft: Option<(u32, i64, u64)> = None;
    while let Some(h) = header_at(r, pos, file_len)? {
        let Some(len) = h.len else { break };
        if pos + len > file_len {
            break; // partial box: the tail.
        }
        match &h.fourcc {
            b"prft" => {
                if prft.is_some() || len > MAX_META_BOX {
                    break;
                }
                let body = r.read(pos + h.header_len, (len - h.header_len) as usize)?;
                match parse_prft(&body) {
                    Ok(p) => prft = Some((p.0, p.1, pos)),
                    Err(_) => break,
                }
                pos += len;
            }
            b"moof" => {
                if len > MAX_META_BOX {
                    break;
                }
                let moof_start = pos;
                let body = r.read(pos + h.header_len, (len - h.header_len) as usize)?;
                let Ok(mut trafs) = parse_moof(&body, moof_start) else {
                    break;
                };
                let mdat_at = pos + len;
                let Some(mh) = header_at(r, mdat_at, file_len)? else {
                    break;
                };
                let Some(mdat_len) = mh.len else { break };
                if &mh.fourcc != b"mdat" || mdat_at + mdat_len > file_len {
                    break;
                }
                let data_start = mdat_at + mh.header_len;
                let data_end = mdat_at + mdat_len;
                let in_mdat = trafs
                    .iter()
                    .flat_map(|t| &t.samples)
                    .all(|s| s.offset >= data_start && s.offset + u64::from(s.size) <= data_end);
                if !in_mdat {
                    break;
                }
                for t in &mut trafs {
                    t.samples.shrink_to_fit();
                }
                let (prft_track, wall_ms, offset) = match prft.take() {
                    Some((track, wall, at)) => (Some(track), Some(wall), at),
                    None => (None, None, moof_start),
                };
                pos = data_end;
                valid_len = pos;
                fragments.push(ScannedFragment {
                    offset,
                    end: pos,
                    wall_ms,
                    prft_track,
                    trafs,
                });
            }
            b"free" | b"skip" if prft.is_none() => {
                pos += len;
                valid_len = pos;
            }
            _ => break,
        }
    }
    Ok(Scanned {
        tracks,
        init_len,
        fragments,
        valid_len,
    })
}

fn header_at<R: Read + Seek>(
    r: &mut Window<'_, R>,
    at: u64,
    file_len: u64,
) -> std::io::Result<Option<crate::boxes::BoxHeader>> {
    if at >= file_len {
        return Ok(None);
    }
    let b = r.read(at, 16.min((file_len - at) as usize))?;
    Ok(parse_header(&b).ok().flatten())
}

/// A whole small box: fourcc, body, and the position after it.
type WholeBox = ([u8; 4], Vec<u8>, u64);

/// Reads a whole (small) box at `at`.
fn read_box<R: Read + Seek>(
    r: &mut Window<'_, R>,
    at: u64,
    file_len: u64,
) -> Result<Option<WholeBox>, ScanError> {
    let Some(h) = header_at(r, at, file_len)? else {
        return Ok(None);
    };
    let len = h.len.unwrap_or(file_len - at);
    if at + len > file_len || len > MAX_META_BOX {
        return Ok(None);
    }
    let body = r.read(at + h.header_len, (len - h.header_len) as usize)?;
    Ok(Some((h.fourcc, body, at + len)))
}

fn parse_prft(b: &[u8]) -> Result<(u32, i64), &'static str> {
    let mut r = Reader::new(b);
    let (version, _) = r.full_header()?;
    let track = r.u32()?;
    let ntp = r.u64()?;
    if version == 1 {
        r.u64()?
    } else {
        u64::from(r.u32()?)
    };
    Ok((track, ntp_to_unix_ms(ntp)))
}

fn find<'a>(b: &'a [u8], want: &[u8; 4]) -> Result<Option<&'a [u8]>, &'static str> {
    for c in Reader::new(b).children() {
        let (f, body) = c?;
        if &f == want {
            return Ok(Some(body));
        }
    }
    Ok(None)
}

fn parse_moov(b: &[u8]) -> Result<Vec<ScannedTrack>, &'static str> {
    let mut tracks = Vec::new();
    for c in Reader::new(b).children() {
        let (f, trak) = c?;
        if &f != b"trak" {
            continue;
        }
        let tkhd = find(trak, b"tkhd")?.ok_or("trak without tkhd")?;
        let mut r = Reader::new(tkhd);
        let (v, _) = r.full_header()?;
        r.skip(if v == 1 { 16 } else { 8 })?;
        let track_id = r.u32()?;
        r.skip(4 + if v == 1 { 8 } else { 4 } + 8 + 8 + 36)?;
        let width = (r.u32()? >> 16) as u16;
        let height = (r.u32()? >> 16) as u16;
        let mdia = find(trak, b"mdia")?.ok_or("trak without mdia")?;
        let mdhd = find(mdia, b"mdhd")?.ok_or("mdia without mdhd")?;
        let mut r = Reader::new(mdhd);
        let (v, _) = r.full_header()?;
        r.skip(if v == 1 { 16 } else { 8 })?;
        let timescale = r.u32()?;
        if timescale == 0 {
            return Err("zero timescale");
        }
        let stsd = find(mdia, b"minf")?
            .map(|minf| find(minf, b"stbl"))
            .transpose()?
            .flatten()
            .map(|stbl| find(stbl, b"stsd"))
            .transpose()?
            .flatten()
            .ok_or("track without stsd")?;
        let entry = stsd.get(8..).ok_or("truncated stsd")?;
        let entry_len = match parse_header(entry) {
            Ok(Some(h)) => h.len.unwrap_or(entry.len() as u64) as usize,
            _ => return Err("bad stsd entry"),
        };
        let sample_entry = entry
            .get(..entry_len)
            .ok_or("truncated stsd entry")?
            .to_vec();
        let codec = sample_entry
            .get(4..8)
            .and_then(|f| Codec::from_fourcc(f.try_into().expect("4 bytes")));
        tracks.push(ScannedTrack {
            track_id,
            codec,
            sample_entry,
            timescale,
            width,
            height,
        });
    }
    if tracks.is_empty() {
        return Err("moov without tracks");
    }
    Ok(tracks)
}

fn parse_moof(b: &[u8], moof_start: u64) -> Result<Vec<ScannedTraf>, &'static str> {
    let mut trafs = Vec::new();
    for c in Reader::new(b).children() {
        let (f, traf) = c?;
        if &f != b"traf" {
            continue;
        }
        let mut r = Reader::new(find(traf, b"tfhd")?.ok_or("traf without tfhd")?);
        let (_, flags) = r.full_header()?;
        let track_id = r.u32()?;
        let mut base = moof_start;
        if flags & 0x1 != 0 {
            base = r.u64()?;
        }
        if flags & 0x2 != 0 {
            r.u32()?;
        }
        let def_dur = if flags & 0x8 != 0 { r.u32()? } else { 0 };
        let def_size = if flags & 0x10 != 0 { r.u32()? } else { 0 };
        let def_flags = if flags & 0x20 != 0 { r.u32()? } else { 0 };
        let base_dts = match find(traf, b"tfdt")? {
            Some(t) => {
                let mut r = Reader::new(t);
                let (v, _) = r.full_header()?;
                if v == 1 {
                    r.u64()?
                } else {
                    u64::from(r.u32()?)
                }
            }
            None => 0,
        };
        let mut samples = Vec::new();
        let mut next_offset = base;
        for c in Reader::new(traf).children() {
            let (f, trun) = c?;
            if &f != b"trun" {
                continue;
            }
            let mut r = Reader::new(trun);
            let (_, tf) = r.full_header()?;
            let count = r.u32()?;
            let mut offset = if tf & 0x1 != 0 {
                base.checked_add_signed(i64::from(r.u32()? as i32))
                    .ok_or("bad data offset")?
            } else {
                next_offset
            };
            let first_flags = if tf & 0x4 != 0 { Some(r.u32()?) } else { None };
            let per = [0x100, 0x200, 0x400, 0x800]
                .iter()
                .filter(|&&b| tf & b != 0)
                .count();
            if (count as usize).saturating_mul(per * 4) > r.remaining() {
                return Err("trun sample count exceeds its box");
            }
            for i in 0..count {
                let duration = if tf & 0x100 != 0 { r.u32()? } else { def_dur };
                let size = if tf & 0x200 != 0 { r.u32()? } else { def_size };
                let mut fl = if tf & 0x400 != 0 { r.u32()? } else { def_flags };
                if i == 0
                    && let Some(ff) = first_flags
                {
                    fl = ff;
                }
                if tf & 0x800 != 0 {
                    r.u32()?; // composition offset (signed when version 1): not needed here
                }
                samples.push(SampleInfo {
                    duration,
                    size,
                    is_sync: fl & 0x0001_0000 == 0,
                    offset,
                });
                offset = offset
                    .checked_add(u64::from(size))
                    .ok_or("sample offset overflow")?;
            }
            next_offset = offset;
        }
        trafs.push(ScannedTraf {
            track_id,
            base_dts,
            samples,
        });
    }
    Ok(trafs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fmp4::{Sample, SegmentWriter, TrackConfig, g711_sample_entry};
    use bytes::Bytes;
    use std::io::Cursor;

    fn tracks() -> Vec<TrackConfig> {
        let mut entry = Vec::new();
        crate::boxes::write_box(&mut entry, b"avc1", |o| o.extend_from_slice(&[0; 78]));
        vec![
            TrackConfig {
                codec: Codec::H264,
                timescale: 90_000,
                sample_entry: entry,
                width: 1280,
                height: 720,
            },
            TrackConfig {
                codec: Codec::Pcma,
                timescale: 8000,
                sample_entry: g711_sample_entry(Codec::Pcma, 8000, 1),
                width: 0,
                height: 0,
            },
        ]
    }

    /// A segment of `secs` seconds: bytes, and the fragments' end offsets.
    pub(crate) fn segment(secs: u64) -> (Vec<u8>, Vec<u64>) {
        let mut w = SegmentWriter::new(tracks(), 1000);
        let mut file = w.init_segment();
        let mut ends = Vec::new();
        for i in 0..secs * 25 {
            let v = Sample {
                track: 0,
                dts: i * 3600,
                is_sync: i % 25 == 0,
                data: Bytes::from(vec![(i % 251) as u8; 50 + (i % 7) as usize]),
                wall_ms: 1_795_000_000_000 + (i as i64) * 40,
            };
            if let Some(f) = w.push(v).unwrap() {
                file.extend_from_slice(&f.bytes.to_vec());
                ends.push(file.len() as u64);
            }
            let a = Sample {
                track: 1,
                dts: i * 320,
                is_sync: true,
                data: Bytes::from_static(&[0xd5; 320]),
                wall_ms: 0,
            };
            if let Some(f) = w.push(a).unwrap() {
                file.extend_from_slice(&f.bytes.to_vec());
                ends.push(file.len() as u64);
            }
        }
        for f in w.finish() {
            file.extend_from_slice(&f.bytes.to_vec());
            ends.push(file.len() as u64);
        }
        (file, ends)
    }

    #[test]
    fn scans_what_the_writer_wrote() {
        let (file, ends) = segment(5);
        let s = scan(&mut Cursor::new(&file), file.len() as u64).unwrap();
        assert_eq!(s.valid_len, file.len() as u64);
        assert_eq!(s.fragments.len(), 5);
        assert_eq!(s.fragments.iter().map(|f| f.end).collect::<Vec<_>>(), ends);
        assert_eq!(s.tracks[0].codec, Some(Codec::H264));
        assert_eq!(
            (s.tracks[0].width, s.tracks[0].height, s.tracks[0].timescale),
            (1280, 720, 90_000)
        );
        assert_eq!(
            (s.tracks[1].codec, s.tracks[1].timescale),
            (Some(Codec::Pcma), 8000)
        );
        let video: Vec<&SampleInfo> = s
            .fragments
            .iter()
            .flat_map(|f| &f.trafs[0].samples)
            .collect();
        assert_eq!(video.len(), 125);
        assert!(video[0].is_sync && !video[1].is_sync && video[25].is_sync);
        // Each sample's bytes are where the index says.
        for (i, v) in video.iter().enumerate() {
            let at = v.offset as usize;
            assert_eq!(file[at], (i % 251) as u8);
            assert_eq!(v.size as usize, 50 + i % 7);
        }
        assert_eq!(s.fragments[2].wall_ms, Some(1_795_000_002_000));
        assert_eq!(s.fragments[2].trafs[0].base_dts, 2 * 90_000);
        let audio: usize = s.fragments.iter().map(|f| f.trafs[1].samples.len()).sum();
        assert_eq!(audio, 125);
    }

    #[test]
    fn a_cut_file_scans_to_its_last_complete_fragment() {
        let (file, ends) = segment(4);
        for cut in [ends[1] + 1, ends[2] - 1, ends[2] - 300, ends[2] + 5] {
            let part = &file[..cut as usize];
            let s = scan(&mut Cursor::new(part), cut).unwrap();
            let want = ends.iter().filter(|&&e| e <= cut).count();
            assert_eq!(s.fragments.len(), want, "cut at {cut}");
            assert_eq!(s.valid_len, *ends.iter().rfind(|&&e| e <= cut).unwrap());
        }
        // Only the init part.
        let init = SegmentWriter::new(tracks(), 1000).init_segment();
        let s = scan(&mut Cursor::new(&init), init.len() as u64).unwrap();
        assert_eq!((s.fragments.len(), s.valid_len), (0, init.len() as u64));
        // Less than the init part: nothing usable.
        let e = scan(
            &mut Cursor::new(&init[..init.len() - 1]),
            init.len() as u64 - 1,
        )
        .unwrap_err();
        assert!(matches!(e, ScanError::NoInit(_)));
    }

    /// Mutated and truncated files never panic the scanner (a cheap, deterministic fuzz).
    #[test]
    fn garbage_never_panics() {
        let (file, _) = segment(3);
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..3000 {
            let mut f = file.clone();
            for _ in 0..1 + rnd() % 8 {
                let i = (rnd() % f.len() as u64) as usize;
                f[i] = rnd() as u8;
            }
            let cut = (rnd() % (f.len() as u64 + 1)) as usize;
            f.truncate(cut);
            if let Ok(s) = scan(&mut Cursor::new(&f), f.len() as u64) {
                assert!(s.valid_len <= f.len() as u64);
                for fr in &s.fragments {
                    for t in &fr.trafs {
                        for smp in &t.samples {
                            assert!(smp.offset + u64::from(smp.size) <= f.len() as u64);
                        }
                    }
                }
            }
        }
    }
}

/// A compact copy of a [`Scanned`] kept beside a closed segment (`<file>.idx`), so reading
/// a segment's sample tables costs one sequential read instead of one read per fragment
/// (what makes an export's first byte fast from a cold disk). It names the segment's
/// length; a copy that does not match is ignored and the segment is scanned.
pub mod sidecar {
    use super::{SampleInfo, Scanned, ScannedFragment, ScannedTrack, ScannedTraf};
    use crate::boxes::Reader;
    use xaso_base::Codec;

    const MAGIC: &[u8; 8] = b"XASOIDX1";

    fn codec_byte(c: Option<Codec>) -> u8 {
        match c {
            None => 0,
            Some(Codec::H264) => 1,
            Some(Codec::H265) => 2,
            Some(Codec::Aac) => 3,
            Some(Codec::Pcmu) => 4,
            Some(Codec::Pcma) => 5,
            Some(_) => 0,
        }
    }

    fn codec_of(b: u8) -> Option<Codec> {
        [
            None,
            Some(Codec::H264),
            Some(Codec::H265),
            Some(Codec::Aac),
            Some(Codec::Pcmu),
            Some(Codec::Pcma),
        ]
        .get(usize::from(b))
        .copied()
        .flatten()
    }

    pub fn encode(s: &Scanned, file_len: u64) -> Vec<u8> {
        let mut o = Vec::with_capacity(64 + s.fragments.len() * 64);
        o.extend_from_slice(MAGIC);
        o.extend_from_slice(&file_len.to_be_bytes());
        o.extend_from_slice(&s.init_len.to_be_bytes());
        o.extend_from_slice(&s.valid_len.to_be_bytes());
        o.extend_from_slice(&(s.tracks.len() as u32).to_be_bytes());
        for t in &s.tracks {
            o.extend_from_slice(&t.track_id.to_be_bytes());
            o.push(codec_byte(t.codec));
            o.extend_from_slice(&t.timescale.to_be_bytes());
            o.extend_from_slice(&t.width.to_be_bytes());
            o.extend_from_slice(&t.height.to_be_bytes());
            o.extend_from_slice(&(t.sample_entry.len() as u32).to_be_bytes());
            o.extend_from_slice(&t.sample_entry);
        }
        o.extend_from_slice(&(s.fragments.len() as u32).to_be_bytes());
        for f in &s.fragments {
            o.extend_from_slice(&f.offset.to_be_bytes());
            o.extend_from_slice(&f.end.to_be_bytes());
            o.extend_from_slice(&f.wall_ms.unwrap_or(i64::MIN).to_be_bytes());
            o.extend_from_slice(&f.prft_track.unwrap_or(0).to_be_bytes());
            o.extend_from_slice(&(f.trafs.len() as u32).to_be_bytes());
            for t in &f.trafs {
                o.extend_from_slice(&t.track_id.to_be_bytes());
                o.extend_from_slice(&t.base_dts.to_be_bytes());
                o.extend_from_slice(&(t.samples.len() as u32).to_be_bytes());
                // Samples of a traf are contiguous: the first offset, then sizes follow.
                o.extend_from_slice(&t.samples.first().map_or(0, |x| x.offset).to_be_bytes());
                for x in &t.samples {
                    o.extend_from_slice(&x.duration.to_be_bytes());
                    o.extend_from_slice(
                        &(x.size | if x.is_sync { 1 << 31 } else { 0 }).to_be_bytes(),
                    );
                }
            }
        }
        o
    }

    /// The scan of a `file_len`-byte segment, if `b` is a valid sidecar for it.
    pub fn decode(b: &[u8], file_len: u64) -> Option<Scanned> {
        let mut r = Reader::new(b);
        if r.bytes(8).ok()? != MAGIC || r.u64().ok()? != file_len {
            return None;
        }
        let init_len = r.u64().ok()?;
        let valid_len = r.u64().ok()?;
        let ntracks = r.u32().ok()? as usize;
        let mut tracks = Vec::with_capacity(ntracks.min(8));
        for _ in 0..ntracks {
            let track_id = r.u32().ok()?;
            let codec = codec_of(r.u8().ok()?);
            let timescale = r.u32().ok()?;
            let width = r.u16().ok()?;
            let height = r.u16().ok()?;
            let n = r.u32().ok()? as usize;
            let sample_entry = r.bytes(n).ok()?.to_vec();
            tracks.push(ScannedTrack {
                track_id,
                codec,
                sample_entry,
                timescale,
                width,
                height,
            });
        }
        let nfrags = r.u32().ok()? as usize;
        let mut fragments = Vec::with_capacity(nfrags.min(1 << 16));
        for _ in 0..nfrags {
            let offset = r.u64().ok()?;
            let end = r.u64().ok()?;
            let wall = r.u64().ok()? as i64;
            let prft = r.u32().ok()?;
            let ntrafs = r.u32().ok()? as usize;
            let mut trafs = Vec::with_capacity(ntrafs.min(8));
            for _ in 0..ntrafs {
                let track_id = r.u32().ok()?;
                let base_dts = r.u64().ok()?;
                let n = r.u32().ok()? as usize;
                let mut at = r.u64().ok()?;
                if n.checked_mul(8)? > r.remaining() {
                    return None;
                }
                let mut samples = Vec::with_capacity(n);
                for _ in 0..n {
                    let duration = r.u32().ok()?;
                    let v = r.u32().ok()?;
                    let size = v & !(1 << 31);
                    samples.push(SampleInfo {
                        duration,
                        size,
                        is_sync: v >> 31 == 1,
                        offset: at,
                    });
                    at = at.checked_add(u64::from(size))?;
                    if at > file_len {
                        return None;
                    }
                }
                trafs.push(ScannedTraf {
                    track_id,
                    base_dts,
                    samples,
                });
            }
            fragments.push(ScannedFragment {
                offset,
                end,
                wall_ms: (wall != i64::MIN).then_some(wall),
                prft_track: (prft != 0).then_some(prft),
                trafs,
            });
        }
        (r.remaining() == 0).then_some(Scanned {
            tracks,
            init_len,
            fragments,
            valid_len,
        })
    }
}

#[cfg(test)]
mod sidecar_tests {
    use super::tests::segment;
    use super::*;
    use std::io::Cursor;

    #[test]
    fn sidecar_round_trip_and_rejects_mismatches() {
        let (file, _) = segment(4);
        let len = file.len() as u64;
        let s = scan(&mut Cursor::new(&file), len).unwrap();
        let b = sidecar::encode(&s, len);
        assert_eq!(sidecar::decode(&b, len), Some(s));
        assert_eq!(
            sidecar::decode(&b, len + 1),
            None,
            "a sidecar of another length"
        );
        for cut in [0, 7, 20, b.len() / 2, b.len() - 1] {
            assert_eq!(sidecar::decode(&b[..cut], len), None, "truncated at {cut}");
        }
        let mut extra = b.clone();
        extra.push(0);
        assert_eq!(sidecar::decode(&extra, len), None);
    }
}
