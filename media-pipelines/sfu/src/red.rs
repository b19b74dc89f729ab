//! Redundant audio (RED, RFC 2198) as the forwarding core meets it: a browser that
//! negotiated RED sends each Opus packet with a copy of the previous one, so a single lost
//! packet is heard anyway. The core forwards RED as it is to subscribers that negotiated it
//! too, and the primary block alone (plain Opus) to those that did not; this module finds
//! that block. Pure functions; no I/O.
//!
//! The payload: one 4-byte header per redundant block (F bit set: 7-bit payload type,
//! 14-bit timestamp offset, 10-bit length), then a 1-byte header for the primary block
//! (F bit clear: its payload type), then the redundant blocks' data in order, then the
//! primary's data, which runs to the end.

use std::ops::Range;

/// Where a RED payload's primary block lies, and its payload type. `None` when the headers
/// are truncated or the lengths they give run past the payload.
pub fn primary(p: &[u8]) -> Option<(u8, Range<usize>)> {
    let mut at = 0;
    let mut data = 0usize;
    loop {
        let h = *p.get(at)?;
        if h & 0x80 == 0 {
            let start = at + 1 + data;
            return (start <= p.len()).then_some((h & 0x7f, start..p.len()));
        }
        let b = p.get(at..at + 4)?;
        data += ((usize::from(b[2]) & 0x03) << 8) | usize::from(b[3]);
        at += 4;
    }
}

#[cfg(test)]
mod tests {
    use super::primary;

    #[test]
    fn the_primary_follows_the_redundant_blocks() {
        // One redundant block of 3 bytes (pt 111, offset 960), then the primary (pt 111).
        let mut p = vec![
            0x80 | 111,
            (960u16 >> 6) as u8,
            ((960u16 & 0x3f) << 2) as u8,
            3,
        ];
        p.push(111);
        p.extend_from_slice(&[1, 2, 3]);
        p.extend_from_slice(&[7, 8, 9, 10]);
        let (pt, r) = primary(&p).unwrap();
        assert_eq!(pt, 111);
        assert_eq!(&p[r], &[7, 8, 9, 10]);
    }

    #[test]
    fn a_packet_with_the_primary_only_and_an_empty_primary() {
        assert_eq!(primary(&[111, 5, 6]), Some((111, 1..3)));
        assert_eq!(primary(&[111]), Some((111, 1..1)));
        // A redundant block of 2 bytes and an empty primary (DTX).
        let p = [0x80 | 111, 0, 0, 2, 111, 4, 4];
        assert_eq!(primary(&p), Some((111, 7..7)));
    }

    #[test]
    fn what_str0m_encodes_is_found() {
        use str0m::rtp::{RedEncoder, RedundantBlock};
        let older = RedundantBlock {
            pt: 111,
            timestamp_offset: 1920,
            payload: vec![1; 40],
        };
        let prev = RedundantBlock {
            pt: 111,
            timestamp_offset: 960,
            payload: vec![2; 70],
        };
        let p = RedEncoder::encode(111, &[3; 65], &[older, prev]);
        let (pt, r) = primary(&p).unwrap();
        assert_eq!((pt, &p[r]), (111, &[3u8; 65][..]));
    }

    #[test]
    fn malformed_payloads_give_none() {
        assert_eq!(primary(&[]), None);
        // A redundant header cut short.
        assert_eq!(primary(&[0x80 | 111, 0, 0]), None);
        // No primary header after the redundant one.
        assert_eq!(primary(&[0x80 | 111, 0, 0, 1]), None);
        // The redundant block's length runs past the end.
        assert_eq!(primary(&[0x80 | 111, 0, 0, 9, 111, 1, 2]), None);
        // A length of 1023 in the 10-bit field.
        let p = [0x80 | 111, 0, 0x03, 0xff, 111];
        assert_eq!(primary(&p), None);
    }
}
