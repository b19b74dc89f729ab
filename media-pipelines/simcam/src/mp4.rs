//! A minimal, safe reader of non-fragmented MP4 (ISO BMFF) files.
//!
//! It reads only what the simulated camera needs: for each track its timescale, a simple edit
//! list, the codec configuration (`avcC` for H.264, `esds` for AAC) and the sample table
//! (`stsz`/`stz2`-less, `stco`/`co64`, `stsc`, `stts`, `ctts`, `stss`), expanded into one
//! [`Sample`] per frame. Every read is bounds-checked: a malformed or truncated file gives an
//! [`Error`], never a panic, and allocation is bounded by the input's size.

use crate::error::{Error, malformed, unsupported};

/// Largest number of samples accepted in one track (about 5.5 hours at 50 fps).
const MAX_SAMPLES: u64 = 1 << 20;

/// A parsed MP4 file: its tracks in file order.
#[derive(Debug, Clone)]
pub struct Mp4 {
    /// Tracks in the order of their `trak` boxes.
    pub tracks: Vec<Track>,
}

/// One track of an MP4 file.
#[derive(Debug, Clone)]
pub struct Track {
    /// `tkhd` track id.
    pub id: u32,
    /// `hdlr` handler type, e.g. `vide` or `soun`.
    pub handler: [u8; 4],
    /// `mdhd` timescale: units of [`Sample::dts`] per second (never 0).
    pub timescale: u32,
    /// Media time of the first presented sample, from a one-entry edit list (`elst`), else 0.
    /// Encoders put the AAC priming samples before it.
    pub media_time: u64,
    /// Codec configuration from the first sample description.
    pub codec: Codec,
    /// Every sample, in decode order.
    pub samples: Vec<Sample>,
}

/// A track's codec and its configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Codec {
    /// H.264 (`avc1`/`avc3` with `avcC`).
    Avc(AvcConfig),
    /// AAC (`mp4a` with `esds`, object type 0x40).
    Aac(AacConfig),
    /// Anything else: its sample entry four-character code.
    Other([u8; 4]),
}

/// H.264 decoder configuration (`AVCDecoderConfigurationRecord`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvcConfig {
    /// Width from the sample entry, in pixels.
    pub width: u16,
    /// Height from the sample entry, in pixels.
    pub height: u16,
    /// `profile_idc`, `constraint_set` flags and `level_idc`: the SDP `profile-level-id`.
    pub profile_level_id: [u8; 3],
    /// Size in bytes (1, 2 or 4) of the length prefix of each NAL unit in a sample.
    pub nal_length_size: u8,
    /// Sequence parameter sets (NAL units without length prefix).
    pub sps: Vec<Vec<u8>>,
    /// Picture parameter sets.
    pub pps: Vec<Vec<u8>>,
}

/// AAC decoder configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AacConfig {
    /// The `AudioSpecificConfig` bytes (ISO 14496-3), as put in the SDP `config=`.
    pub audio_specific_config: Vec<u8>,
    /// Audio object type (2 = AAC-LC).
    pub object_type: u8,
    /// Sampling rate in Hz, from the `AudioSpecificConfig`.
    pub sample_rate: u32,
    /// Channel count (from the `AudioSpecificConfig`, else the sample entry).
    pub channels: u16,
}

/// One sample (frame) of a track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Byte offset in the file; `offset + size` is within the file.
    pub offset: u64,
    /// Size in bytes.
    pub size: u32,
    /// Decode time, in the track's timescale.
    pub dts: u64,
    /// Duration, in the track's timescale.
    pub duration: u32,
    /// Composition offset (`pts = dts + cts_offset`).
    pub cts_offset: i32,
    /// True for a sync sample (keyframe); every sample when there is no `stss`.
    pub is_sync: bool,
}

/// A bounds-checked big-endian reader.
#[derive(Clone, Copy)]
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], Error> {
        if n > self.remaining() {
            return malformed!(
                "need {n} bytes at offset {} of a {}-byte box",
                self.pos,
                self.buf.len()
            );
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn skip(&mut self, n: usize) -> Result<(), Error> {
        self.bytes(n).map(|_| ())
    }

    fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.bytes(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, Error> {
        let b = self.bytes(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, Error> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, Error> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    /// Reads a full box's version and flags.
    fn version_flags(&mut self) -> Result<(u8, u32), Error> {
        let v = self.u32()?;
        Ok(((v >> 24) as u8, v & 0x00ff_ffff))
    }

    /// Reads a count of `entry_size`-byte entries, checking that they fit in what remains.
    fn count(&mut self, entry_size: usize) -> Result<usize, Error> {
        let n = self.u32()? as usize;
        if n.checked_mul(entry_size)
            .is_none_or(|len| len > self.remaining())
        {
            return malformed!("{n} entries of {entry_size} bytes overrun their box");
        }
        Ok(n)
    }
}

/// A box: its type and body (the bytes after the header).
struct Mp4Box<'a> {
    kind: [u8; 4],
    body: &'a [u8],
}

/// Iterates over the boxes laid end to end in `buf`.
struct Boxes<'a> {
    r: Reader<'a>,
}

impl<'a> Boxes<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Boxes {
            r: Reader::new(buf),
        }
    }
}

impl<'a> Iterator for Boxes<'a> {
    type Item = Result<Mp4Box<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.r.remaining() == 0 {
            return None;
        }
        Some(self.read_one())
    }
}

impl<'a> Boxes<'a> {
    fn read_one(&mut self) -> Result<Mp4Box<'a>, Error> {
        let start = self.r.pos;
        let size32 = self.r.u32()?;
        let kind: [u8; 4] = self.r.bytes(4)?.try_into().unwrap_or([0; 4]);
        let size = match size32 {
            0 => (self.r.buf.len() - start) as u64,
            1 => self.r.u64()?,
            s => u64::from(s),
        };
        let header = (self.r.pos - start) as u64;
        if size < header || size - header > self.r.remaining() as u64 {
            // Make the iterator stop after this error.
            self.r.pos = self.r.buf.len();
            return malformed!(
                "box {} of size {size} at offset {start} overruns its parent",
                fourcc(kind)
            );
        }
        let body = self.r.bytes((size - header) as usize)?;
        Ok(Mp4Box { kind, body })
    }
}

fn fourcc(k: [u8; 4]) -> String {
    k.iter()
        .map(|&c| if c.is_ascii_graphic() { c as char } else { '?' })
        .collect()
}

/// Returns the body of the first child of type `kind`, if any.
fn find<'a>(buf: &'a [u8], kind: &[u8; 4]) -> Result<Option<&'a [u8]>, Error> {
    for b in Boxes::new(buf) {
        let b = b?;
        if &b.kind == kind {
            return Ok(Some(b.body));
        }
    }
    Ok(None)
}

/// Like [`find`] but a missing box is an error.
fn need<'a>(buf: &'a [u8], kind: &[u8; 4], parent: &str) -> Result<&'a [u8], Error> {
    match find(buf, kind)? {
        Some(b) => Ok(b),
        None => malformed!("{parent} has no {} box", fourcc(*kind)),
    }
}

impl Mp4 {
    /// Parses a whole MP4 file held in memory.
    pub fn parse(data: &[u8]) -> Result<Mp4, Error> {
        let mut moov = None;
        for b in Boxes::new(data) {
            let b = b?;
            match &b.kind {
                b"moov" => moov = Some(b.body),
                b"moof" => return unsupported!("fragmented MP4 (moof) is not supported"),
                _ => {}
            }
        }
        let Some(moov) = moov else {
            return malformed!("no moov box");
        };
        let mut tracks = Vec::new();
        for b in Boxes::new(moov) {
            let b = b?;
            if &b.kind == b"mvex" {
                return unsupported!("fragmented MP4 (mvex) is not supported");
            }
            if &b.kind == b"trak" {
                tracks.push(parse_trak(b.body, data.len() as u64)?);
            }
        }
        Ok(Mp4 { tracks })
    }
}

fn parse_trak(trak: &[u8], file_len: u64) -> Result<Track, Error> {
    let mut tkhd = Reader::new(need(trak, b"tkhd", "trak")?);
    let (v, _) = tkhd.version_flags()?;
    tkhd.skip(if v == 1 { 16 } else { 8 })?; // creation and modification times
    let id = tkhd.u32()?;

    let mdia = need(trak, b"mdia", "trak")?;
    let mut mdhd = Reader::new(need(mdia, b"mdhd", "mdia")?);
    let (v, _) = mdhd.version_flags()?;
    mdhd.skip(if v == 1 { 16 } else { 8 })?;
    let timescale = mdhd.u32()?;
    if timescale == 0 {
        return malformed!("track {id} has timescale 0");
    }
    let mut hdlr = Reader::new(need(mdia, b"hdlr", "mdia")?);
    hdlr.version_flags()?;
    hdlr.skip(4)?; // pre_defined
    let handler: [u8; 4] = hdlr.bytes(4)?.try_into().unwrap_or([0; 4]);

    let media_time = match find(trak, b"edts")? {
        Some(edts) => match find(edts, b"elst")? {
            Some(elst) => parse_elst(elst)?,
            None => 0,
        },
        None => 0,
    };

    let minf = need(mdia, b"minf", "mdia")?;
    let stbl = need(minf, b"stbl", "minf")?;
    let codec = parse_stsd(need(stbl, b"stsd", "stbl")?)?;
    let samples = parse_sample_table(stbl, file_len)?;
    Ok(Track {
        id,
        handler,
        timescale,
        media_time,
        codec,
        samples,
    })
}

/// Reads the media time of the first non-empty edit of an edit list (0 when none).
fn parse_elst(elst: &[u8]) -> Result<u64, Error> {
    let mut r = Reader::new(elst);
    let (v, _) = r.version_flags()?;
    let entry = if v == 1 { 20 } else { 12 };
    let n = r.count(entry)?;
    for _ in 0..n {
        let media_time = if v == 1 {
            r.skip(8)?;
            r.u64()? as i64
        } else {
            r.skip(4)?;
            i64::from(r.u32()? as i32)
        };
        r.skip(4)?; // media rate
        if media_time >= 0 {
            return Ok(media_time as u64);
        }
        // -1: an empty edit (a delay); look at the next entry.
    }
    Ok(0)
}

fn parse_stsd(stsd: &[u8]) -> Result<Codec, Error> {
    let mut r = Reader::new(stsd);
    r.version_flags()?;
    let n = r.u32()?;
    if n == 0 {
        return malformed!("stsd has no sample entry");
    }
    let Some(entry) = Boxes::new(&stsd[r.pos..]).next() else {
        return malformed!("stsd has no sample entry");
    };
    let entry = entry?;
    match &entry.kind {
        b"avc1" | b"avc3" => parse_avc1(entry.body).map(Codec::Avc),
        b"mp4a" => parse_mp4a(entry.body),
        k => Ok(Codec::Other(*k)),
    }
}

fn parse_avc1(body: &[u8]) -> Result<AvcConfig, Error> {
    let mut r = Reader::new(body);
    r.skip(6 + 2 + 16)?; // reserved, data_reference_index, pre_defined/reserved
    let width = r.u16()?;
    let height = r.u16()?;
    r.skip(50)?; // resolutions, reserved, frame_count, compressorname, depth, pre_defined
    let avcc = need(&body[r.pos..], b"avcC", "avc1")?;
    let mut a = Reader::new(avcc);
    let version = a.u8()?;
    if version != 1 {
        return malformed!("avcC version {version}");
    }
    let profile_level_id = [a.u8()?, a.u8()?, a.u8()?];
    let nal_length_size = (a.u8()? & 0x03) + 1;
    if nal_length_size == 3 {
        return malformed!("avcC NAL length size 3");
    }
    let n_sps = a.u8()? & 0x1f;
    let mut sps = Vec::new();
    for _ in 0..n_sps {
        let len = a.u16()? as usize;
        sps.push(a.bytes(len)?.to_vec());
    }
    let n_pps = a.u8()?;
    let mut pps = Vec::new();
    for _ in 0..n_pps {
        let len = a.u16()? as usize;
        pps.push(a.bytes(len)?.to_vec());
    }
    if sps.iter().chain(pps.iter()).any(|p| p.is_empty()) {
        return malformed!("avcC holds an empty parameter set");
    }
    Ok(AvcConfig {
        width,
        height,
        profile_level_id,
        nal_length_size,
        sps,
        pps,
    })
}

/// The AAC configuration of an `mp4a` sample entry (the whole box, as the ingest gives it):
/// its AudioSpecificConfig, sample rate and channels. `None` for anything else.
pub fn aac_config_of_sample_entry(entry: &[u8]) -> Option<AacConfig> {
    if entry.get(4..8)? != b"mp4a" {
        return None;
    }
    match parse_mp4a(entry.get(8..)?).ok()? {
        Codec::Aac(c) => Some(c),
        _ => None,
    }
}

fn parse_mp4a(body: &[u8]) -> Result<Codec, Error> {
    let mut r = Reader::new(body);
    r.skip(6 + 2)?; // reserved, data_reference_index
    let version = r.u16()?;
    r.skip(6)?; // revision, vendor
    let entry_channels = r.u16()?;
    r.skip(2 + 2 + 2 + 4)?; // sample size, pre_defined, reserved, sample rate 16.16
    match version {
        0 => {}
        1 => r.skip(16)?,
        2 => r.skip(36)?,
        v => return unsupported!("mp4a sound description version {v}"),
    }
    let Some(esds) = find(&body[r.pos..], b"esds")? else {
        return Ok(Codec::Other(*b"mp4a"));
    };
    let mut e = Reader::new(esds);
    e.version_flags()?;
    let Some(asc) = find_decoder_specific_info(&mut e)? else {
        return Ok(Codec::Other(*b"mp4a"));
    };
    let (object_type, sample_rate, asc_channels) = parse_audio_specific_config(asc)?;
    Ok(Codec::Aac(AacConfig {
        audio_specific_config: asc.to_vec(),
        object_type,
        sample_rate,
        channels: if asc_channels == 0 {
            entry_channels
        } else {
            u16::from(asc_channels)
        },
    }))
}

/// Reads an MPEG-4 descriptor header: tag and length (1 to 4 bytes of 7 bits).
fn descriptor<'a>(r: &mut Reader<'a>) -> Result<(u8, Reader<'a>), Error> {
    let tag = r.u8()?;
    let mut len = 0usize;
    for _ in 0..4 {
        let b = r.u8()?;
        len = (len << 7) | usize::from(b & 0x7f);
        if b & 0x80 == 0 {
            break;
        }
    }
    Ok((tag, Reader::new(r.bytes(len)?)))
}

/// Walks `ES_Descriptor` > `DecoderConfigDescriptor` > `DecoderSpecificInfo`. Returns `None`
/// when the object type is not MPEG-4 audio (0x40).
fn find_decoder_specific_info<'a>(r: &mut Reader<'a>) -> Result<Option<&'a [u8]>, Error> {
    let (tag, mut es) = descriptor(r)?;
    if tag != 0x03 {
        return malformed!("esds starts with descriptor tag {tag:#x}, not ES_Descriptor");
    }
    es.skip(2)?; // ES_ID
    let flags = es.u8()?;
    if flags & 0x80 != 0 {
        es.skip(2)?; // dependsOn_ES_ID
    }
    if flags & 0x40 != 0 {
        let len = es.u8()?;
        es.skip(usize::from(len))?; // URL
    }
    if flags & 0x20 != 0 {
        es.skip(2)?; // OCR_ES_Id
    }
    while es.remaining() > 0 {
        let (tag, mut dc) = descriptor(&mut es)?;
        if tag != 0x04 {
            continue;
        }
        let object_type = dc.u8()?;
        if object_type != 0x40 {
            return Ok(None);
        }
        dc.skip(1 + 3 + 4 + 4)?; // stream type, buffer size, max and average bitrate
        while dc.remaining() > 0 {
            let (tag, dsi) = descriptor(&mut dc)?;
            if tag == 0x05 {
                return Ok(Some(dsi.buf));
            }
        }
        return malformed!("DecoderConfigDescriptor has no DecoderSpecificInfo");
    }
    malformed!("ES_Descriptor has no DecoderConfigDescriptor")
}

/// Parses the start of an `AudioSpecificConfig`: (object type, sample rate, channel config).
pub fn parse_audio_specific_config(asc: &[u8]) -> Result<(u8, u32, u8), Error> {
    const RATES: [u32; 13] = [
        96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
    ];
    let mut bits = BitReader { buf: asc, pos: 0 };
    let mut object_type = bits.read(5)? as u8;
    if object_type == 31 {
        object_type = 32 + bits.read(6)? as u8;
    }
    let index = bits.read(4)? as usize;
    let sample_rate = if index == 15 {
        bits.read(24)?
    } else {
        match RATES.get(index) {
            Some(&r) => r,
            None => return malformed!("AudioSpecificConfig sampling frequency index {index}"),
        }
    };
    if sample_rate == 0 {
        return malformed!("AudioSpecificConfig sample rate 0");
    }
    let channels = bits.read(4)? as u8;
    Ok((object_type, sample_rate, channels))
}

struct BitReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl BitReader<'_> {
    fn read(&mut self, n: u32) -> Result<u32, Error> {
        let mut v = 0u32;
        for _ in 0..n {
            let Some(&byte) = self.buf.get(self.pos / 8) else {
                return malformed!("AudioSpecificConfig is truncated");
            };
            v = (v << 1) | u32::from((byte >> (7 - self.pos % 8)) & 1);
            self.pos += 1;
        }
        Ok(v)
    }
}

fn parse_sample_table(stbl: &[u8], file_len: u64) -> Result<Vec<Sample>, Error> {
    // Sizes.
    let mut r = Reader::new(need(stbl, b"stsz", "stbl")?);
    r.version_flags()?;
    let constant_size = r.u32()?;
    let sizes: Vec<u32> = if constant_size == 0 {
        let n = r.count(4)?;
        (0..n).map(|_| r.u32()).collect::<Result<_, _>>()?
    } else {
        let n = u64::from(r.u32()?);
        if n > MAX_SAMPLES || n.saturating_mul(u64::from(constant_size)) > file_len {
            return malformed!("stsz: {n} samples of {constant_size} bytes exceed the file");
        }
        vec![constant_size; n as usize]
    };
    let n = sizes.len();
    if n as u64 > MAX_SAMPLES {
        return unsupported!("{n} samples in one track");
    }

    // Chunk offsets.
    let chunk_offsets: Vec<u64> = if let Some(stco) = find(stbl, b"stco")? {
        let mut r = Reader::new(stco);
        r.version_flags()?;
        let c = r.count(4)?;
        (0..c)
            .map(|_| r.u32().map(u64::from))
            .collect::<Result<_, _>>()?
    } else if let Some(co64) = find(stbl, b"co64")? {
        let mut r = Reader::new(co64);
        r.version_flags()?;
        let c = r.count(8)?;
        (0..c).map(|_| r.u64()).collect::<Result<_, _>>()?
    } else {
        return malformed!("stbl has neither stco nor co64");
    };

    // Sample-to-chunk: (first_chunk (1-based), samples_per_chunk).
    let mut r = Reader::new(need(stbl, b"stsc", "stbl")?);
    r.version_flags()?;
    let c = r.count(12)?;
    let mut stsc = Vec::with_capacity(c);
    for _ in 0..c {
        let first_chunk = r.u32()?;
        let per_chunk = r.u32()?;
        r.skip(4)?; // sample description index
        if first_chunk == 0 || stsc.last().is_some_and(|&(f, _)| f >= first_chunk) {
            return malformed!("stsc first_chunk values are not increasing from 1");
        }
        stsc.push((first_chunk, per_chunk));
    }

    let mut offsets = Vec::with_capacity(n);
    let mut sample = 0usize;
    for (i, &(first_chunk, per_chunk)) in stsc.iter().enumerate() {
        let end_chunk = match stsc.get(i + 1) {
            Some(&(next, _)) => (next - 1) as usize,
            None => chunk_offsets.len(),
        };
        let first = (first_chunk - 1) as usize;
        for &chunk_offset in chunk_offsets.iter().take(end_chunk).skip(first) {
            let mut off = chunk_offset;
            for _ in 0..per_chunk {
                if sample >= n {
                    break;
                }
                offsets.push(off);
                off = off.saturating_add(u64::from(sizes[sample]));
                sample += 1;
            }
        }
    }
    if offsets.len() != n {
        return malformed!("stsc/stco place {} of {n} samples", offsets.len());
    }

    // Decode times.
    let mut r = Reader::new(need(stbl, b"stts", "stbl")?);
    r.version_flags()?;
    let c = r.count(8)?;
    let mut durations = Vec::with_capacity(n);
    for _ in 0..c {
        let count = r.u32()? as usize;
        let delta = r.u32()?;
        if count > n - durations.len() {
            return malformed!("stts describes more than the {n} samples of stsz");
        }
        durations.extend(std::iter::repeat_n(delta, count));
    }
    if durations.len() != n {
        return malformed!("stts describes {} of {n} samples", durations.len());
    }

    // Composition offsets (optional).
    let mut cts = vec![0i32; n];
    if let Some(ctts) = find(stbl, b"ctts")? {
        let mut r = Reader::new(ctts);
        r.version_flags()?;
        let c = r.count(8)?;
        let mut i = 0usize;
        for _ in 0..c {
            let count = r.u32()? as usize;
            // Version 0 is unsigned in the spec but encoders write negative values; both read
            // the same as i32 for any sane file.
            let off = r.u32()? as i32;
            if count > n - i {
                return malformed!("ctts describes more than the {n} samples of stsz");
            }
            cts[i..i + count].fill(off);
            i += count;
        }
    }

    // Sync samples (optional: all are sync when absent).
    let mut sync = vec![true; n];
    if let Some(stss) = find(stbl, b"stss")? {
        sync.fill(false);
        let mut r = Reader::new(stss);
        r.version_flags()?;
        let c = r.count(4)?;
        for _ in 0..c {
            let s = r.u32()? as usize;
            match s.checked_sub(1).and_then(|i| sync.get_mut(i)) {
                Some(flag) => *flag = true,
                None => return malformed!("stss names sample {s} of {n}"),
            }
        }
    }

    let mut out = Vec::with_capacity(n);
    let mut dts = 0u64;
    for i in 0..n {
        let (offset, size) = (offsets[i], sizes[i]);
        if offset
            .checked_add(u64::from(size))
            .is_none_or(|end| end > file_len)
        {
            return malformed!("sample {i} at {offset}+{size} is outside the {file_len}-byte file");
        }
        out.push(Sample {
            offset,
            size,
            dts,
            duration: durations[i],
            cts_offset: cts[i],
            is_sync: sync[i],
        });
        dts += u64::from(durations[i]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIP: &[u8] = include_bytes!("../../../tests/data/sim-640x360.mp4");

    #[test]
    fn reads_the_committed_clip() {
        let mp4 = Mp4::parse(CLIP).unwrap();
        assert_eq!(mp4.tracks.len(), 2);
        let v = &mp4.tracks[0];
        assert_eq!(&v.handler, b"vide");
        assert_eq!(v.samples.len(), 250);
        let Codec::Avc(avc) = &v.codec else {
            panic!("video codec {:?}", v.codec)
        };
        assert_eq!((avc.width, avc.height), (640, 360));
        assert_eq!(avc.profile_level_id[0], 66, "Baseline");
        assert_eq!(avc.nal_length_size, 4);
        assert_eq!((avc.sps.len(), avc.pps.len()), (1, 1));
        assert_eq!(avc.sps[0][0] & 0x1f, 7);
        assert_eq!(avc.pps[0][0] & 0x1f, 8);
        let sync: Vec<usize> = (0..250).filter(|&i| v.samples[i].is_sync).collect();
        assert_eq!(sync, (0..10).map(|i| i * 25).collect::<Vec<_>>());
        let total: u64 = v.samples.iter().map(|s| u64::from(s.duration)).sum();
        assert_eq!(total, 10 * u64::from(v.timescale), "10 s of video");
        assert!(v.samples.iter().all(|s| s.cts_offset == 0));

        let a = &mp4.tracks[1];
        assert_eq!(&a.handler, b"soun");
        let Codec::Aac(aac) = &a.codec else {
            panic!("audio codec {:?}", a.codec)
        };
        assert_eq!(aac.object_type, 2, "AAC-LC");
        assert_eq!(aac.sample_rate, 48000);
        assert_eq!(aac.channels, 1);
        // AAC-LC, 48 kHz, mono, then ffmpeg's explicit "no SBR" sync extension (0x2b7).
        assert_eq!(
            aac.audio_specific_config,
            vec![0x11, 0x88, 0x56, 0xe5, 0x00]
        );
        assert_eq!(
            a.media_time, 1024,
            "priming samples skipped by the edit list"
        );
        assert!(a.samples.iter().all(|s| s.is_sync));
        assert_eq!(a.samples[1].dts, 1024);
        assert!(a.samples.len() >= 469);
    }

    #[test]
    fn rejects_garbage() {
        assert!(Mp4::parse(b"").is_err());
        assert!(Mp4::parse(b"\0\0\0\x08free").is_err(), "no moov");
        assert!(Mp4::parse(b"\0\0\0\x09moov").is_err(), "overrun");
        assert!(
            Mp4::parse(b"\0\0\0\x01moov").is_err(),
            "truncated largesize"
        );
        assert!(Mp4::parse(b"\0\0\0\x08moof\0\0\0\x08moov").is_err());
    }

    #[test]
    fn asc_parsing() {
        assert_eq!(
            parse_audio_specific_config(&[0x11, 0x88]).unwrap(),
            (2, 48000, 1)
        );
        assert_eq!(
            parse_audio_specific_config(&[0x14, 0x08]).unwrap(),
            (2, 16000, 1)
        );
        assert!(parse_audio_specific_config(&[0x11]).is_err());
        assert!(
            parse_audio_specific_config(&[0x16, 0x88]).is_err(),
            "index 13"
        );
    }

    /// A small deterministic generator (xorshift) so the fuzz test needs no dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    /// Mutated and truncated copies of the real clip, and random bytes, never panic.
    #[test]
    fn fuzz_mutations_never_panic() {
        let mut rng = Rng(0x5eed_1234_abcd_0001);
        let mut data = CLIP.to_vec();
        // The moov box is at the start (faststart): mutate mostly there, sometimes anywhere.
        let moov_end = 8000.min(data.len());
        let mut ok = 0;
        for round in 0..3000 {
            let mut undo = Vec::new();
            for _ in 0..1 + rng.next() % 8 {
                let range = if rng.next().is_multiple_of(8) {
                    data.len()
                } else {
                    moov_end
                };
                let i = (rng.next() as usize) % range;
                undo.push((i, data[i]));
                data[i] = match rng.next() % 4 {
                    0 => 0,
                    1 => 0xff,
                    2 => data[i].wrapping_add(1),
                    _ => rng.next() as u8,
                };
            }
            let len = if round % 3 == 0 {
                (rng.next() as usize) % data.len()
            } else {
                data.len()
            };
            let _ = Mp4::parse(&data[..len]);
            if crate::clip::Clip::from_mp4_bytes(&data[..len]).is_ok() {
                ok += 1;
            }
            for (i, b) in undo.into_iter().rev() {
                data[i] = b;
            }
        }
        assert_eq!(data, CLIP, "mutations undone");
        assert!(ok > 0, "some mutations (in padding, names...) still load");
        for len in 0..300 {
            let random: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            assert!(Mp4::parse(&random).is_err() || len >= 8);
        }
        for cut in (0..moov_end).step_by(5) {
            assert!(Mp4::parse(&CLIP[..cut]).is_err(), "moov cut at {cut}");
        }
    }
}
