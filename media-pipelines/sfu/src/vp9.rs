//! The VP9 RTP payload descriptor (RFC 9628 §4.2), as far as forwarding needs it: whether
//! a packet starts a keyframe, and where its picture ID and TL0PICIDX are, so that a slot
//! that switches publisher or layer keeps them continuous as it does for VP8 (see
//! [`crate::vp8`] for why, and [`crate::vp8::Renumber`] for the numbering itself). VP9's
//! descriptor has no in-place patch in str0m: a renumbered packet is copied and rewritten
//! here.
//!
//! Pure functions; no I/O.

/// What forwarding reads from a VP9 payload descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Descriptor {
    /// B: the packet starts a frame.
    pub starts_frame: bool,
    /// P: the frame is predicted from an earlier one (not intra).
    pub inter: bool,
    /// The spatial layer (0 without layer indices).
    pub sid: u8,
    /// The picture ID and whether it is 15 bits wide (else 7).
    pub picture_id: Option<(u16, bool)>,
    /// TL0PICIDX (non-flexible mode with layer indices).
    pub tl0_pic_idx: Option<u8>,
}

impl Descriptor {
    /// Parses the descriptor's leading fields (`None` when they are truncated).
    pub fn parse(p: &[u8]) -> Option<Descriptor> {
        let b0 = *p.first()?;
        let (i, inter, l, f, b) = (
            b0 & 0x80 != 0,
            b0 & 0x40 != 0,
            b0 & 0x20 != 0,
            b0 & 0x10 != 0,
            b0 & 0x08 != 0,
        );
        let mut at = 1;
        let picture_id = if i {
            let m = *p.get(at)?;
            if m & 0x80 != 0 {
                let lo = *p.get(at + 1)?;
                at += 2;
                Some(((u16::from(m & 0x7f) << 8) | u16::from(lo), true))
            } else {
                at += 1;
                Some((u16::from(m), false))
            }
        } else {
            None
        };
        let (sid, tl0_pic_idx) = if l {
            let li = *p.get(at)?;
            let tl0 = if f { None } else { Some(*p.get(at + 1)?) };
            ((li >> 1) & 0x07, tl0)
        } else {
            (0, None)
        };
        Some(Descriptor {
            starts_frame: b,
            inter,
            sid,
            picture_id,
            tl0_pic_idx,
        })
    }

    /// The first packet of a keyframe: a frame's start, intra, of the base spatial layer.
    pub fn starts_keyframe(&self) -> bool {
        self.starts_frame && !self.inter && self.sid == 0
    }

    /// The picture ID with its modulus, as [`crate::vp8::Renumber`] takes it.
    pub fn numbered(&self) -> Option<(u16, u32)> {
        self.picture_id
            .map(|(pic, wide)| (pic, if wide { 1 << 15 } else { 1 << 7 }))
    }
}

/// `p` with its picture ID and TL0PICIDX replaced (each only where `p` has that field; a
/// picture ID keeps its width). `p` must have parsed as `d`.
pub fn rewrite(p: &[u8], d: &Descriptor, pic: Option<u16>, tl0: Option<u8>) -> Vec<u8> {
    let mut out = p.to_vec();
    let mut at = 1;
    if let Some((_, wide)) = d.picture_id {
        if let Some(v) = pic {
            if wide {
                out[1] = 0x80 | ((v >> 8) as u8 & 0x7f);
                out[2] = v as u8;
            } else {
                out[1] = v as u8 & 0x7f;
            }
        }
        at += if wide { 2 } else { 1 };
    }
    if let (Some(_), Some(v)) = (d.tl0_pic_idx, tl0) {
        // After the layer indices.
        out[at + 1] = v;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vp8::Renumber;

    /// Non-flexible mode: I (15-bit), L, B, with `key` deciding P; TID 0, SID `sid`.
    fn pkt(pic: u16, tl0: u8, key: bool, sid: u8) -> Vec<u8> {
        let b0 = 0x80 | 0x20 | 0x08 | if key { 0 } else { 0x40 };
        vec![
            b0,
            0x80 | (pic >> 8) as u8,
            pic as u8,
            sid << 1,
            tl0,
            0xaa,
            0xbb,
        ]
    }

    #[test]
    fn descriptors_parse_and_keyframes_are_found() {
        let d = Descriptor::parse(&pkt(300, 7, true, 0)).unwrap();
        assert_eq!(d.picture_id, Some((300, true)));
        assert_eq!(d.tl0_pic_idx, Some(7));
        assert!(d.starts_keyframe());
        assert!(
            !Descriptor::parse(&pkt(300, 7, false, 0))
                .unwrap()
                .starts_keyframe()
        );
        // An upper spatial layer of a keyframe does not start one.
        assert!(
            !Descriptor::parse(&pkt(300, 7, true, 1))
                .unwrap()
                .starts_keyframe()
        );
        // Not a frame's first packet.
        let mut p = pkt(300, 7, true, 0);
        p[0] &= !0x08;
        assert!(!Descriptor::parse(&p).unwrap().starts_keyframe());
        // 7-bit picture ID, no layer indices: what a one-layer sender may write.
        let d = Descriptor::parse(&[0x88, 0x05, 0xaa]).unwrap();
        assert_eq!(
            (d.picture_id, d.tl0_pic_idx, d.sid),
            (Some((5, false)), None, 0)
        );
        assert!(d.starts_keyframe());
        // Flexible mode: no TL0PICIDX.
        let d = Descriptor::parse(&[0xb8, 0x81, 0x02, 0x00, 0xaa]).unwrap();
        assert_eq!((d.picture_id, d.tl0_pic_idx), (Some((258, true)), None));
        // Truncated anywhere: `None`, never a panic.
        let full = pkt(300, 7, true, 0);
        for n in 0..5 {
            assert_eq!(Descriptor::parse(&full[..n]), None, "{n}");
        }
    }

    #[test]
    fn a_switch_continues_the_numbering_in_a_rewritten_copy() {
        let mut r = Renumber::default();
        let send = |r: &mut Renumber, p: &[u8], start: bool| {
            let d = Descriptor::parse(p).unwrap();
            if start {
                r.restart_at(d.numbered(), d.tl0_pic_idx);
            }
            let (pic, tl0) = r.map(d.numbered(), d.tl0_pic_idx);
            let out = rewrite(p, &d, pic, tl0);
            let o = Descriptor::parse(&out).unwrap();
            assert_eq!(
                &out[5..],
                &p[5..],
                "the payload after the descriptor is kept"
            );
            (o.picture_id.unwrap().0, o.tl0_pic_idx.unwrap())
        };
        assert_eq!(send(&mut r, &pkt(1000, 50, true, 0), true), (1000, 50));
        assert_eq!(send(&mut r, &pkt(1001, 51, false, 0), false), (1001, 51));
        // Another publisher, numbered behind: continues at 1002 / 52.
        assert_eq!(send(&mut r, &pkt(7, 200, true, 0), true), (1002, 52));
        assert_eq!(send(&mut r, &pkt(8, 201, false, 0), false), (1003, 53));
        // One across the 15-bit wrap.
        assert_eq!(send(&mut r, &pkt(32_767, 9, true, 0), true), (1004, 54));
        assert_eq!(send(&mut r, &pkt(1, 10, false, 0), false), (1006, 55));
        // 7-bit IDs stay 7 bits wide.
        let p = [0x88, 0x7f, 0xaa];
        let d = Descriptor::parse(&p).unwrap();
        r.restart_at(d.numbered(), None);
        let (pic, _) = r.map(d.numbered(), None);
        let out = rewrite(&p, &d, pic, None);
        assert_eq!(out, [0x88, (1007 % 128) as u8, 0xaa]);
    }

    #[test]
    fn garbage_never_panics() {
        let mut r = Renumber::default();
        for b in crate::testutil::garbage(0x51_7cc1_b727_220a, 20_000, 8) {
            if let Some(d) = Descriptor::parse(&b) {
                r.restart_at(d.numbered(), d.tl0_pic_idx);
                let (pic, tl0) = r.map(d.numbered(), d.tl0_pic_idx);
                let _ = rewrite(&b, &d, pic, tl0);
            }
        }
    }
}
