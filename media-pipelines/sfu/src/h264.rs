//! H.264 for WebRTC: turning an access unit (NAL units with 4-byte length prefixes, as the
//! ingest delivers them) into RTP payloads (RFC 6184, packetization mode 1), and reading the
//! parameter sets out of an `avcC` record.
//!
//! A camera's access unit is packetized once, whatever the number of viewers; the payloads
//! are shared. NAL units that fit the payload size go alone, larger ones as FU-A fragments;
//! SPS and PPS go together in one STAP-A before every IDR picture that does not carry them
//! (cameras often send them only in the SDP, and a viewer who joins at a keyframe needs
//! them). Access-unit delimiters and filler data are dropped.
//!
//! Pure functions over bytes; no input makes them panic (tests feed them garbage).

/// RTP payload bytes per packet: 1200 keeps a packet (with RTP, SRTP and UDP/IP headers and
/// a TURN envelope) under any path MTU WebRTC meets, as browsers themselves do.
pub const MAX_PAYLOAD: usize = 1200;

const NAL_IDR: u8 = 5;
const NAL_SPS: u8 = 7;
const NAL_AUD: u8 = 9;
const NAL_FILLER: u8 = 12;
const STAP_A: u8 = 24;
const FU_A: u8 = 28;

/// The parameter sets of a stream (H.265 also has video parameter sets).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParameterSets {
    pub vps: Vec<Vec<u8>>,
    pub sps: Vec<Vec<u8>>,
    pub pps: Vec<Vec<u8>>,
}

impl ParameterSets {
    pub fn is_empty(&self) -> bool {
        self.sps.is_empty() || self.pps.is_empty()
    }

    /// The `profile-level-id` (hex, 6 digits) of the first SPS, for SDP matching.
    pub fn profile_level_id(&self) -> Option<u32> {
        let s = self.sps.first()?;
        (s.len() >= 4).then(|| u32::from_be_bytes([0, s[1], s[2], s[3]]))
    }
}

/// Reads the parameter sets from an ISO BMFF `avc1` sample entry (or a bare `avcC` box, or
/// anything that holds one), or an H.265 one (`hvcC`, see [`crate::h265`]). `None` if no
/// well-formed record is found.
pub fn parameter_sets_from_sample_entry(entry: &[u8]) -> Option<ParameterSets> {
    match entry.windows(4).position(|w| w == b"avcC") {
        Some(at) => parse_avcc(&entry[at + 4..]),
        None => crate::h265::parameter_sets_from_sample_entry(entry),
    }
}

/// Parses an AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3.1).
pub fn parse_avcc(b: &[u8]) -> Option<ParameterSets> {
    let mut r = Reader(b);
    if r.u8()? != 1 {
        return None;
    }
    r.take(4)?; // profile, compatibility, level, length size
    let mut out = ParameterSets::default();
    let n_sps = r.u8()? & 0x1f;
    for _ in 0..n_sps {
        let len = r.u16()? as usize;
        out.sps.push(r.take(len)?.to_vec());
    }
    let n_pps = r.u8()?;
    for _ in 0..n_pps {
        let len = r.u16()? as usize;
        out.pps.push(r.take(len)?.to_vec());
    }
    Some(out)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
}

/// Iterates the NAL units of a length-prefixed access unit. Stops at the first length that
/// runs past the end (a truncated unit is not forwarded half).
pub fn nal_units(mut au: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        loop {
            if au.len() < 4 {
                return None;
            }
            let len = u32::from_be_bytes([au[0], au[1], au[2], au[3]]) as usize;
            let rest = &au[4..];
            if len > rest.len() {
                au = &[];
                return None;
            }
            let (nal, tail) = rest.split_at(len);
            au = tail;
            if !nal.is_empty() {
                return Some(nal);
            }
        }
    })
}

/// Packetizes one access unit into RTP payloads, calling `emit(payload, last)` for each;
/// `last` marks the packet that ends the access unit (the RTP marker bit). `params` are
/// sent first when the unit holds an IDR picture but no SPS. Returns the number of packets.
pub fn packetize(
    au: &[u8],
    params: Option<&ParameterSets>,
    max_payload: usize,
    emit: impl FnMut(Vec<u8>, bool),
) -> usize {
    let max_payload = max_payload.max(16);
    let nals: Vec<&[u8]> = nal_units(au)
        .filter(|n| !matches!(n[0] & 0x1f, NAL_AUD | NAL_FILLER))
        .collect();
    let has_idr = nals.iter().any(|n| n[0] & 0x1f == NAL_IDR);
    let has_sps = nals.iter().any(|n| n[0] & 0x1f == NAL_SPS);
    let mut sets: Vec<&[u8]> = Vec::new();
    if has_idr
        && !has_sps
        && let Some(p) = params.filter(|p| !p.is_empty())
    {
        sets = p.sps.iter().chain(&p.pps).map(Vec::as_slice).collect();
        sets.retain(|s| !s.is_empty());
    }
    let nri = sets.iter().map(|s| s[0] & 0x60).max().unwrap_or(0x60);
    // In-band SPS/PPS are sent as they come (they may differ from the SDP's).
    emit_units(
        &sets,
        &[nri | STAP_A],
        &nals,
        max_payload,
        single_or_fu,
        emit,
    )
}

/// Emits an access unit's payloads: the parameter sets `sets` first (together in one
/// aggregation packet behind `aggregate_header` when more than one fits, else each alone),
/// then each NAL unit through `single_or_fu`; the last payload marked. Returns the count.
pub(crate) fn emit_units(
    sets: &[&[u8]],
    aggregate_header: &[u8],
    nals: &[&[u8]],
    max_payload: usize,
    single_or_fu: fn(&[u8], usize, &mut Vec<Vec<u8>>),
    mut emit: impl FnMut(Vec<u8>, bool),
) -> usize {
    let mut payloads: Vec<Vec<u8>> = Vec::new();
    let aggregate_len = aggregate_header.len() + sets.iter().map(|s| 2 + s.len()).sum::<usize>();
    if sets.len() > 1 && aggregate_len <= max_payload {
        let mut p = Vec::with_capacity(aggregate_len);
        p.extend_from_slice(aggregate_header);
        for s in sets {
            p.extend_from_slice(&(s.len() as u16).to_be_bytes());
            p.extend_from_slice(s);
        }
        payloads.push(p);
    } else {
        for s in sets {
            single_or_fu(s, max_payload, &mut payloads);
        }
    }
    for nal in nals {
        single_or_fu(nal, max_payload, &mut payloads);
    }
    let n = payloads.len();
    for (i, p) in payloads.into_iter().enumerate() {
        emit(p, i + 1 == n);
    }
    n
}

fn single_or_fu(nal: &[u8], max_payload: usize, out: &mut Vec<Vec<u8>>) {
    if nal.len() <= max_payload {
        out.push(nal.to_vec());
        return;
    }
    let header = nal[0];
    let indicator = (header & 0xe0) | FU_A;
    fragment(&[indicator], header & 0x1f, &nal[1..], max_payload, out);
}

/// Fragmentation units (H.264 FU-A, H.265 FU): `body` in pieces, each behind `prefix` and a
/// header of `kind` with the start and end bits, `max_payload` bytes at most.
pub(crate) fn fragment(
    prefix: &[u8],
    kind: u8,
    body: &[u8],
    max_payload: usize,
    out: &mut Vec<Vec<u8>>,
) {
    let chunk = max_payload - prefix.len() - 1;
    let n = body.len().div_ceil(chunk);
    for (i, part) in body.chunks(chunk).enumerate() {
        let mut fu_header = kind;
        if i == 0 {
            fu_header |= 0x80;
        }
        if i + 1 == n {
            fu_header |= 0x40;
        }
        let mut p = Vec::with_capacity(prefix.len() + 1 + part.len());
        p.extend_from_slice(prefix);
        p.push(fu_header);
        p.extend_from_slice(part);
        out.push(p);
    }
}

/// One fragmentation unit back: starts (with `header()`, the rebuilt NAL header), continues
/// or ends the unit in `fu`; a whole unit goes to `out`. `None` on a unit out of sequence.
pub(crate) fn unfragment(
    fu: &mut Option<Vec<u8>>,
    fu_header: u8,
    header: impl FnOnce() -> Vec<u8>,
    body: &[u8],
    out: &mut Vec<Vec<u8>>,
) -> Option<()> {
    if fu_header & 0x80 != 0 {
        let mut v = header();
        v.extend_from_slice(body);
        *fu = Some(v);
    } else {
        fu.as_mut()?.extend_from_slice(body);
    }
    if fu_header & 0x40 != 0 {
        out.push(fu.take()?);
    }
    Some(())
}

/// An access unit of `nals` with 4-byte length prefixes (tests).
#[cfg(test)]
pub(crate) fn test_au(nals: &[&[u8]]) -> Vec<u8> {
    let mut v = Vec::new();
    for n in nals {
        v.extend_from_slice(&(n.len() as u32).to_be_bytes());
        v.extend_from_slice(n);
    }
    v
}

/// Reassembles RTP payloads into NAL units (the inverse of [`packetize`], for tests and the
/// load client): single NAL units, STAP-A and FU-A. `None` on a malformed payload sequence.
pub fn depacketize<'a>(payloads: impl IntoIterator<Item = &'a [u8]>) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut fu: Option<Vec<u8>> = None;
    for p in payloads {
        let (&first, rest) = p.split_first()?;
        match first & 0x1f {
            STAP_A => {
                let mut r = Reader(rest);
                while !r.0.is_empty() {
                    let len = r.u16()? as usize;
                    out.push(r.take(len)?.to_vec());
                }
            }
            FU_A => {
                let (&h, body) = rest.split_first()?;
                unfragment(
                    &mut fu,
                    h,
                    || vec![(first & 0xe0) | (h & 0x1f)],
                    body,
                    &mut out,
                )?;
            }
            1..=23 => out.push(p.to_vec()),
            _ => return None,
        }
    }
    fu.is_none().then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::h264::test_au as au;

    fn params() -> ParameterSets {
        ParameterSets {
            sps: vec![vec![0x67, 0x64, 0x00, 0x28, 0xac]],
            pps: vec![vec![0x68, 0xee, 0x3c, 0x80]],
            ..Default::default()
        }
    }

    fn collect(a: &[u8], p: Option<&ParameterSets>, max: usize) -> Vec<(Vec<u8>, bool)> {
        let mut out = Vec::new();
        packetize(a, p, max, |b, last| out.push((b, last)));
        out
    }

    #[test]
    fn small_units_go_alone_and_the_last_packet_is_marked() {
        let a = au(&[&[0x09, 0xf0], &[0x06, 1, 2], &[0x41, 9, 9, 9]]);
        let out = collect(&a, None, MAX_PAYLOAD);
        assert_eq!(
            out,
            vec![(vec![0x06, 1, 2], false), (vec![0x41, 9, 9, 9], true)],
            "AUD dropped, SEI and slice alone, marker on the last"
        );
    }

    #[test]
    fn an_idr_without_sps_gets_the_parameter_sets_first_in_one_stap_a() {
        let idr = [0x65, 1, 2, 3];
        let out = collect(&au(&[&idr]), Some(&params()), MAX_PAYLOAD);
        assert_eq!(out.len(), 2);
        let stap = &out[0].0;
        assert_eq!(stap[0] & 0x1f, STAP_A);
        let nals = depacketize(out.iter().map(|(p, _)| p.as_slice())).unwrap();
        assert_eq!(
            nals,
            vec![
                params().sps[0].clone(),
                params().pps[0].clone(),
                idr.to_vec()
            ]
        );
        // An IDR that carries its own SPS gets nothing added.
        let with = au(&[&[0x67, 0x42, 0, 0x1f], &[0x68, 1], &idr]);
        assert_eq!(collect(&with, Some(&params()), MAX_PAYLOAD).len(), 3);
        // A non-IDR picture gets nothing added.
        assert_eq!(
            collect(&au(&[&[0x41, 1]]), Some(&params()), MAX_PAYLOAD).len(),
            1
        );
    }

    #[test]
    fn large_units_are_split_into_fu_a_and_reassemble_exactly() {
        let mut big = vec![0x65];
        big.extend((0..5000u32).map(|i| (i * 7 % 251) as u8));
        let out = collect(&au(&[&big]), None, 1200);
        assert_eq!(out.len(), 5);
        assert!(out.iter().all(|(p, _)| p.len() <= 1200));
        assert_eq!(out[0].0[1] & 0x80, 0x80, "start bit");
        assert_eq!(out[4].0[1] & 0x40, 0x40, "end bit");
        assert!(out[4].1 && !out[3].1);
        let nals = depacketize(out.iter().map(|(p, _)| p.as_slice())).unwrap();
        assert_eq!(nals, vec![big]);
    }

    #[test]
    fn avcc_records_are_parsed_and_bad_ones_refused() {
        let rec = [
            1, 0x64, 0, 0x28, 0xff, 0xe1, 0, 5, 0x67, 0x64, 0x00, 0x28, 0xac, 1, 0, 4, 0x68, 0xee,
            0x3c, 0x80,
        ];
        let mut entry = b"....avc1....avcC".to_vec();
        entry.extend_from_slice(&rec);
        let p = parameter_sets_from_sample_entry(&entry).unwrap();
        assert_eq!(p, params());
        assert_eq!(p.profile_level_id(), Some(0x640028));
        assert_eq!(parse_avcc(&rec[..10]), None, "truncated");
        assert_eq!(parse_avcc(&[2, 0, 0, 0, 0, 0]), None, "version");
        assert_eq!(parameter_sets_from_sample_entry(b"no record here"), None);
    }

    #[test]
    fn truncated_access_units_forward_only_whole_units() {
        let mut a = au(&[&[0x41, 1, 2]]);
        a.extend_from_slice(&[0, 0, 0, 50, 0x41, 1]);
        assert_eq!(collect(&a, None, MAX_PAYLOAD).len(), 1);
        assert_eq!(collect(&[0, 0, 0], None, MAX_PAYLOAD).len(), 0);
    }

    /// Deterministic garbage: no input makes the parsers panic, and whatever the packetizer
    /// emits reassembles into the units it was given (modulo dropped AUD/filler).
    #[test]
    fn garbage_never_panics() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..2000 {
            let len = (next() % 3000) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let _ = parse_avcc(&bytes);
            let _ = parameter_sets_from_sample_entry(&bytes);
            let _ = depacketize([bytes.as_slice()]);
            let max = 16 + (next() % 1500) as usize;
            let mut out = Vec::new();
            packetize(&bytes, Some(&params()), max, |p, _| out.push(p));
            assert!(out.iter().all(|p| p.len() <= max.max(16)));
            let want: Vec<Vec<u8>> = nal_units(&bytes)
                .filter(|n| !matches!(n[0] & 0x1f, NAL_AUD | NAL_FILLER))
                .map(<[u8]>::to_vec)
                .collect();
            if want
                .iter()
                .all(|n| n[0] & 0x1f != NAL_IDR && matches!(n[0] & 0x1f, 1..=23))
            {
                let got = depacketize(out.iter().map(Vec::as_slice)).unwrap();
                assert_eq!(got, want);
            }
        }
    }
}
