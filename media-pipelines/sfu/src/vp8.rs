//! The VP8 RTP payload descriptor (RFC 7741 §4.2): where a packet's picture ID and
//! TL0PICIDX are, whether it starts a keyframe, and the per-slot rewriting that keeps both
//! continuous when a slot switches simulcast layer or publisher.
//!
//! Why the rewriting: each simulcast layer (and each publisher) numbers its pictures from
//! its own random start. A receiver orders frames by picture ID, so a slot that switched
//! to a layer numbered behind the old one would see every new frame as "older than the
//! last decoded" and drop it: packets arrive, no frame plays. An SFU therefore renumbers
//! per subscriber, as it already does with sequence numbers and timestamps.
//!
//! Pure functions and a small state machine; no I/O.

use str0m::rtp::{Vp8Descriptor, Vp8Patch};

/// Parses a VP8 payload's descriptor (`None` when truncated or malformed).
pub fn descriptor(p: &[u8]) -> Option<Vp8Descriptor> {
    Vp8Descriptor::parse(p).ok()
}

/// The first packet of a keyframe: partition 0's start, whose frame header's P bit is 0.
pub fn keyframe_start(p: &[u8]) -> bool {
    descriptor(p).is_some_and(|d| d.starts_keyframe(p))
}

/// The picture ID's modulus: 2^15 in its long form (`M` bit), 2^7 in its short one. The
/// picture ID is the first optional field, so its first byte is always the third.
fn modulus(p: &[u8]) -> u32 {
    if p.get(2).is_some_and(|b| b & 0x80 != 0) {
        1 << 15
    } else {
        1 << 7
    }
}

/// One slot's picture ID and TL0PICIDX renumbering. The output of every feed the slot
/// carries follows on from the previous one's: [`Renumber::restart`] at the keyframe a
/// feed starts with, then [`Renumber::patch`] for each packet.
#[derive(Clone, Copy, Debug, Default)]
pub struct Renumber {
    /// Added to the incoming values (modulo their width).
    pic_offset: u16,
    tl0_offset: u8,
    /// The latest values written.
    last_pic: Option<u16>,
    last_tl0: Option<u8>,
}

impl Renumber {
    /// Called at the packet a feed starts (or restarts) with: its picture is numbered one
    /// after the last written, and its TL0PICIDX likewise.
    pub fn restart(&mut self, d: &Vp8Descriptor, p: &[u8]) {
        self.restart_at(d.picture_id().map(|pic| (pic, modulus(p))), d.tl0_pic_idx());
    }

    /// As [`Renumber::restart`], for any codec that numbers its pictures so (VP8, VP9):
    /// the picture ID with its modulus, and the TL0PICIDX.
    pub fn restart_at(&mut self, pic: Option<(u16, u32)>, tl0: Option<u8>) {
        if let Some((pic, m)) = pic {
            let next = self.last_pic.map_or(u32::from(pic), |l| u32::from(l) + 1) % m;
            self.pic_offset = ((next + m - u32::from(pic) % m) % m) as u16;
        }
        if let Some(t) = tl0 {
            let next = self.last_tl0.map_or(t, |l| l.wrapping_add(1));
            self.tl0_offset = next.wrapping_sub(t);
        }
    }

    /// The numbers one packet goes out with (as [`Renumber::restart_at`] takes them in).
    pub fn map(&mut self, pic: Option<(u16, u32)>, tl0: Option<u8>) -> (Option<u16>, Option<u8>) {
        let pic = pic.map(|(pic, m)| {
            let new = ((u32::from(pic) + u32::from(self.pic_offset)) % m) as u16;
            self.last_pic = Some(new);
            new
        });
        let tl0 = tl0.map(|t| {
            let new = t.wrapping_add(self.tl0_offset);
            self.last_tl0 = Some(new);
            new
        });
        (pic, tl0)
    }

    /// The rewrite of one packet of the feed: `None` when its fields go out as they came
    /// (the shared payload is sent untouched), else the patch str0m applies as it
    /// serializes the packet (no extra copy).
    pub fn patch(&mut self, d: &Vp8Descriptor, p: &[u8]) -> Option<Vp8Patch> {
        let (pic, tl0) = (d.picture_id(), d.tl0_pic_idx());
        let (new_pic, new_tl0) = self.map(pic.map(|x| (x, modulus(p))), tl0);
        let mut b = d.patch();
        let mut changed = false;
        if let Some(new) = new_pic.filter(|n| Some(*n) != pic) {
            b = b.picture_id(new);
            changed = true;
        }
        if let Some(new) = new_tl0.filter(|n| Some(*n) != tl0) {
            b = b.tl0_pic_idx(new);
            changed = true;
        }
        if changed { b.build().ok() } else { None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A first packet with X, I (15-bit), L, T: picture `pic`, TL0PICIDX `tl0`.
    fn pkt(pic: u16, tl0: u8, key: bool) -> Vec<u8> {
        vec![
            0x90,
            0xe0,
            0x80 | (pic >> 8) as u8,
            pic as u8,
            tl0,
            0x20,
            if key { 0x00 } else { 0x01 },
            0xaa,
        ]
    }

    fn restart(r: &mut Renumber, p: &[u8]) {
        r.restart(&descriptor(p).unwrap(), p);
    }

    fn patch(r: &mut Renumber, p: &[u8]) -> Option<Vp8Patch> {
        r.patch(&descriptor(p).unwrap(), p)
    }

    /// The patch that writes `pic` and `tl0` into `p`.
    fn expect(p: &[u8], pic: u16, tl0: Option<u8>) -> Option<Vp8Patch> {
        let mut b = descriptor(p).unwrap().patch().picture_id(pic);
        if let Some(t) = tl0 {
            b = b.tl0_pic_idx(t);
        }
        Some(b.build().unwrap())
    }

    #[test]
    fn keyframes_are_found_past_the_descriptor() {
        // S=1, PID=0, no extension; frame header P bit 0: key.
        assert!(keyframe_start(&[0x10, 0x00, 0x9d, 0x01, 0x2a]));
        assert!(!keyframe_start(&[0x10, 0x01]));
        // Not the start of partition 0.
        assert!(!keyframe_start(&[0x00, 0x00]));
        assert!(!keyframe_start(&[0x11, 0x00]));
        assert!(keyframe_start(&pkt(300, 7, true)));
        assert!(!keyframe_start(&pkt(300, 7, false)));
        // Truncated anywhere: never a keyframe, never a panic.
        let full = pkt(300, 7, true);
        for n in 0..7 {
            assert!(!keyframe_start(&full[..n]), "{n}");
        }
    }

    #[test]
    fn a_switch_continues_the_numbering_both_ways() {
        let mut r = Renumber::default();
        // The first feed goes out unchanged.
        restart(&mut r, &pkt(1000, 50, true));
        for i in 0..5u16 {
            assert_eq!(patch(&mut r, &pkt(1000 + i, 50 + i as u8, i == 0)), None);
        }
        // A layer numbered behind: continues at 1005 / 55.
        let p = pkt(200, 250, true);
        restart(&mut r, &p);
        assert_eq!(patch(&mut r, &p), expect(&p, 1005, Some(55)));
        // The same picture's other packets keep its number; the next picture follows.
        let p = pkt(200, 250, false);
        assert_eq!(patch(&mut r, &p), expect(&p, 1005, Some(55)));
        let p = pkt(201, 251, false);
        assert_eq!(patch(&mut r, &p), expect(&p, 1006, Some(56)));
        // One numbered ahead, across the 15-bit wrap.
        let p = pkt(32_760, 3, true);
        restart(&mut r, &p);
        assert_eq!(patch(&mut r, &p), expect(&p, 1007, Some(57)));
        // 32760 → 1007, so 10 (18 pictures later, wrapped) → 1025.
        let p = pkt(10, 4, false);
        assert_eq!(patch(&mut r, &p), expect(&p, 1025, Some(58)));
    }

    #[test]
    fn seven_bit_ids_wrap_at_128_and_garbage_never_panics() {
        let mut r = Renumber::default();
        let p = [0x90, 0x80, 120, 0x00];
        restart(&mut r, &p);
        assert_eq!(patch(&mut r, &p), None);
        let p = [0x90, 0x80, 3, 0x00];
        restart(&mut r, &p);
        assert_eq!(patch(&mut r, &p), expect(&p, 121, None));
        let p = [0x90, 0x80, 10, 0x00];
        assert_eq!(patch(&mut r, &p), expect(&p, 0, None));
        for (i, b) in crate::testutil::garbage(0x9e37_79b9_7f4a_7c15, 20_000, 8)
            .iter()
            .enumerate()
        {
            if let Some(d) = descriptor(b) {
                if i % 2 == 0 {
                    r.restart(&d, b);
                }
                let _ = r.patch(&d, b);
            }
            let _ = keyframe_start(b);
        }
    }
}
