//! H.265 for WebRTC, as [`crate::h264`] is for H.264: an access unit (4-byte length
//! prefixes) into RTP payloads (RFC 7798), and the parameter sets out of an `hvcC` record.
//!
//! NAL units that fit go alone, larger ones as fragmentation units (FU, type 49); VPS, SPS
//! and PPS go together in one aggregation packet (AP, type 48) before every IRAP picture
//! that does not carry them. Access-unit delimiters and filler data are dropped. Pure
//! functions over bytes; no input makes them panic.

use crate::h264::{ParameterSets, emit_units, fragment, nal_units, unfragment};

const NAL_AUD: u8 = 35;
const NAL_FD: u8 = 38;
const NAL_VPS: u8 = 32;
const NAL_SPS: u8 = 33;
const NAL_PPS: u8 = 34;
const AP: u8 = 48;
const FU: u8 = 49;

fn nal_type(nal: &[u8]) -> u8 {
    (nal[0] >> 1) & 0x3f
}

/// IRAP pictures (BLA, IDR, CRA: types 16 to 23) start a decodable sequence.
fn is_irap(nal: &[u8]) -> bool {
    (16..=23).contains(&nal_type(nal))
}

/// Reads VPS, SPS and PPS from an `hvc1`/`hev1` sample entry (or anything holding an
/// `hvcC` box). `None` if no well-formed HEVCDecoderConfigurationRecord is found.
pub fn parameter_sets_from_sample_entry(entry: &[u8]) -> Option<ParameterSets> {
    let at = entry.windows(4).position(|w| w == b"hvcC")?;
    parse_hvcc(&entry[at + 4..])
}

/// Parses an HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 8.3.3.1).
pub fn parse_hvcc(b: &[u8]) -> Option<ParameterSets> {
    // 22 bytes of profile, level and format fields, then the NAL unit arrays.
    if b.len() < 23 || b[0] != 1 {
        return None;
    }
    let mut rest = &b[23..];
    let mut take = |n: usize| -> Option<&[u8]> {
        if rest.len() < n {
            return None;
        }
        let (a, r) = rest.split_at(n);
        rest = r;
        Some(a)
    };
    let mut out = ParameterSets::default();
    let arrays = b[22];
    for _ in 0..arrays {
        let kind = take(1)?[0] & 0x3f;
        let n = take(2)?;
        for _ in 0..u16::from_be_bytes([n[0], n[1]]) {
            let l = take(2)?;
            let nal = take(usize::from(u16::from_be_bytes([l[0], l[1]])))?.to_vec();
            match kind {
                NAL_VPS => out.vps.push(nal),
                NAL_SPS => out.sps.push(nal),
                NAL_PPS => out.pps.push(nal),
                _ => {}
            }
        }
    }
    Some(out)
}

/// Packetizes one access unit, calling `emit(payload, last)` for each RTP payload (`last`:
/// the marker bit). Returns the number of packets.
pub fn packetize(
    au: &[u8],
    params: Option<&ParameterSets>,
    max_payload: usize,
    emit: impl FnMut(Vec<u8>, bool),
) -> usize {
    let max_payload = max_payload.max(16);
    let nals: Vec<&[u8]> = nal_units(au)
        .filter(|n| n.len() >= 2 && !matches!(nal_type(n), NAL_AUD | NAL_FD))
        .collect();
    let has_irap = nals.iter().any(|n| is_irap(n));
    let has_sps = nals.iter().any(|n| nal_type(n) == NAL_SPS);
    let mut sets: Vec<&[u8]> = Vec::new();
    if has_irap
        && !has_sps
        && let Some(p) = params.filter(|p| !p.is_empty())
    {
        sets = p
            .vps
            .iter()
            .chain(&p.sps)
            .chain(&p.pps)
            .map(Vec::as_slice)
            .collect();
        sets.retain(|s| s.len() >= 2);
    }
    // The AP header: F and layer id of the units, the lowest temporal id + 1.
    let tid = sets.iter().map(|s| s[1] & 0x07).min().unwrap_or(1);
    emit_units(
        &sets,
        &[AP << 1, tid],
        &nals,
        max_payload,
        single_or_fu,
        emit,
    )
}

fn single_or_fu(nal: &[u8], max_payload: usize, out: &mut Vec<Vec<u8>>) {
    if nal.len() <= max_payload {
        out.push(nal.to_vec());
        return;
    }
    let header = [(nal[0] & 0x81) | (FU << 1), nal[1]];
    fragment(&header, nal_type(nal), &nal[2..], max_payload, out);
}

/// Reassembles RTP payloads into NAL units (single, AP and FU): the inverse of
/// [`packetize`], for tests and the load client. `None` on a malformed sequence.
pub fn depacketize<'a>(payloads: impl IntoIterator<Item = &'a [u8]>) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut fu: Option<Vec<u8>> = None;
    for p in payloads {
        if p.len() < 2 {
            return None;
        }
        match nal_type(p) {
            AP => {
                let mut r = &p[2..];
                while !r.is_empty() {
                    if r.len() < 2 {
                        return None;
                    }
                    let len = usize::from(u16::from_be_bytes([r[0], r[1]]));
                    let nal = r.get(2..2 + len)?;
                    out.push(nal.to_vec());
                    r = &r[2 + len..];
                }
            }
            FU => {
                let h = *p.get(2)?;
                let header = || vec![(p[0] & 0x81) | ((h & 0x3f) << 1), p[1]];
                unfragment(&mut fu, h, header, &p[3..], &mut out)?;
            }
            0..=47 => out.push(p.to_vec()),
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
            vps: vec![vec![0x40, 0x01, 0x0c, 0x01]],
            sps: vec![vec![0x42, 0x01, 0x01, 0x01, 0x60]],
            pps: vec![vec![0x44, 0x01, 0xc1, 0x72]],
        }
    }

    fn collect(a: &[u8], p: Option<&ParameterSets>, max: usize) -> Vec<(Vec<u8>, bool)> {
        let mut out = Vec::new();
        packetize(a, p, max, |b, last| out.push((b, last)));
        out
    }

    #[test]
    fn an_irap_picture_gets_the_parameter_sets_first_in_one_aggregation_packet() {
        let idr: Vec<u8> = [0x26, 0x01].iter().copied().chain(0..40).collect(); // IDR_W_RADL
        let aud = [0x46, 0x01, 0x50];
        let out = collect(&au(&[&aud, &idr]), Some(&params()), 1200);
        assert_eq!(out.len(), 2, "AUD dropped: AP, then the picture");
        assert_eq!(nal_type(&out[0].0), AP);
        assert_eq!(out[1], (idr.clone(), true));
        let back = depacketize(out.iter().map(|(p, _)| p.as_slice())).unwrap();
        let p = params();
        assert_eq!(
            back,
            vec![p.vps[0].clone(), p.sps[0].clone(), p.pps[0].clone(), idr]
        );
        // A picture that is not IRAP (TRAIL_R, type 1) goes alone.
        let trail = [0x02, 0x01, 9, 9];
        assert_eq!(
            collect(&au(&[&trail]), Some(&p), 1200),
            vec![(trail.to_vec(), true)]
        );
    }

    #[test]
    fn large_units_are_fragmented_and_reassemble() {
        let big: Vec<u8> = [0x02, 0x01]
            .iter()
            .copied()
            .chain((0..5000).map(|i| i as u8))
            .collect();
        let out = collect(&au(&[&big]), None, 1200);
        assert_eq!(out.len(), 5);
        assert!(
            out.iter()
                .all(|(p, _)| p.len() <= 1200 && nal_type(p) == FU)
        );
        assert_eq!(out[0].0[2] & 0xc0, 0x80, "start bit");
        assert_eq!(out[4].0[2] & 0xc0, 0x40, "end bit");
        assert!(out[4].1 && !out[3].1);
        let back = depacketize(out.iter().map(|(p, _)| p.as_slice())).unwrap();
        assert_eq!(back, vec![big]);
    }

    #[test]
    fn hvcc_records_are_read_and_garbage_is_refused() {
        let p = params();
        let mut rec = vec![1u8];
        rec.extend_from_slice(&[0; 21]);
        rec.push(3);
        for (kind, nal) in [
            (NAL_VPS, &p.vps[0]),
            (NAL_SPS, &p.sps[0]),
            (NAL_PPS, &p.pps[0]),
        ] {
            rec.push(0x80 | kind);
            rec.extend_from_slice(&1u16.to_be_bytes());
            rec.extend_from_slice(&(nal.len() as u16).to_be_bytes());
            rec.extend_from_slice(nal);
        }
        assert_eq!(parse_hvcc(&rec), Some(p));
        for cut in 0..rec.len() {
            let _ = parse_hvcc(&rec[..cut]);
        }
        assert_eq!(parse_hvcc(&rec[..rec.len() - 1]), None);
        // Deterministic garbage: never a panic.
        let mut x = 0x9e37_79b9u32;
        for _ in 0..2000 {
            let junk: Vec<u8> = (0..64)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            let _ = parse_hvcc(&junk);
            let _ = depacketize([junk.as_slice()]);
            let _ = collect(&junk, Some(&params()), 100);
        }
    }
}
