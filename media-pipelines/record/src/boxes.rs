//! ISO BMFF box plumbing: writing boxes into a `Vec<u8>` (sizes patched afterwards), and
//! reading box headers and big-endian fields from untrusted bytes without panicking.

/// Writes a box: `f` fills the body; the size is patched in afterwards.
pub fn write_box(out: &mut Vec<u8>, fourcc: &[u8; 4], f: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(fourcc);
    f(out);
    let len = u32::try_from(out.len() - start).expect("box over 4 GiB");
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
}

/// Writes a full box (version and 24-bit flags before the body).
pub fn write_full_box(
    out: &mut Vec<u8>,
    fourcc: &[u8; 4],
    version: u8,
    flags: u32,
    f: impl FnOnce(&mut Vec<u8>),
) {
    write_box(out, fourcc, |out| {
        out.push(version);
        out.extend_from_slice(&flags.to_be_bytes()[1..]);
        f(out);
    });
}

pub fn u16be(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub fn u32be(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub fn u64be(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// The unity matrix of `mvhd` and `tkhd`.
pub fn unity_matrix(out: &mut Vec<u8>) {
    for v in [0x0001_0000u32, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000] {
        u32be(out, v);
    }
}

/// `hdlr` of a video or sound track.
pub fn write_hdlr(o: &mut Vec<u8>, video: bool) {
    write_full_box(o, b"hdlr", 0, 0, |o| {
        u32be(o, 0);
        o.extend_from_slice(if video { b"vide" } else { b"soun" });
        o.extend_from_slice(&[0; 12]);
        o.extend_from_slice(if video {
            b"xaso video\0"
        } else {
            b"xaso audio\0"
        });
    });
}

/// The start of `minf`: `vmhd` or `smhd`, and a `dinf` saying the data is in this file.
pub fn write_media_header_and_dinf(o: &mut Vec<u8>, video: bool) {
    if video {
        write_full_box(o, b"vmhd", 0, 1, |o| o.extend_from_slice(&[0; 8]));
    } else {
        write_full_box(o, b"smhd", 0, 0, |o| u32be(o, 0));
    }
    write_box(o, b"dinf", |o| {
        write_full_box(o, b"dref", 0, 0, |o| {
            u32be(o, 1);
            write_full_box(o, b"url ", 0, 1, |_| {});
        });
    });
}

/// A box header read from bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BoxHeader {
    pub fourcc: [u8; 4],
    /// Header length: 8, or 16 with a 64-bit size.
    pub header_len: u64,
    /// Whole box length, header included. `None`: the box runs to the end of the file.
    pub len: Option<u64>,
}

/// Parses a box header from the start of `b`. `Ok(None)` when `b` is too short to hold it.
pub fn parse_header(b: &[u8]) -> Result<Option<BoxHeader>, &'static str> {
    if b.len() < 8 {
        return Ok(None);
    }
    let size = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let fourcc = [b[4], b[5], b[6], b[7]];
    let (header_len, len) = match size {
        0 => (8, None),
        1 => {
            if b.len() < 16 {
                return Ok(None);
            }
            let l = u64::from_be_bytes(b[8..16].try_into().expect("8 bytes"));
            if l < 16 {
                return Err("box with a 64-bit size smaller than its header");
            }
            (16, Some(l))
        }
        s if s < 8 => return Err("box smaller than its header"),
        s => (8, Some(u64::from(s))),
    };
    Ok(Some(BoxHeader {
        fourcc,
        header_len,
        len,
    }))
}

/// A cursor over untrusted bytes: every read is bounds-checked.
pub struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(b: &'a [u8]) -> Self {
        Reader { b, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.b.len() - self.pos
    }

    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        if self.remaining() < n {
            return Err("truncated box");
        }
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub fn skip(&mut self, n: usize) -> Result<(), &'static str> {
        self.bytes(n).map(|_| ())
    }

    pub fn u8(&mut self) -> Result<u8, &'static str> {
        Ok(self.bytes(1)?[0])
    }

    pub fn u16(&mut self) -> Result<u16, &'static str> {
        Ok(u16::from_be_bytes(self.bytes(2)?.try_into().expect("2")))
    }

    pub fn u32(&mut self) -> Result<u32, &'static str> {
        Ok(u32::from_be_bytes(self.bytes(4)?.try_into().expect("4")))
    }

    pub fn u64(&mut self) -> Result<u64, &'static str> {
        Ok(u64::from_be_bytes(self.bytes(8)?.try_into().expect("8")))
    }

    /// Version and flags of a full box.
    pub fn full_header(&mut self) -> Result<(u8, u32), &'static str> {
        let v = self.u32()?;
        Ok(((v >> 24) as u8, v & 0x00ff_ffff))
    }

    /// Iterates the child boxes in the rest of the bytes: `(fourcc, body)`.
    pub fn children(mut self) -> impl Iterator<Item = Result<([u8; 4], &'a [u8]), &'static str>> {
        std::iter::from_fn(move || {
            if self.remaining() == 0 {
                return None;
            }
            let rest = &self.b[self.pos..];
            let r = match parse_header(rest) {
                Ok(Some(h)) => {
                    let len = h.len.unwrap_or(rest.len() as u64);
                    if len > rest.len() as u64 || len < h.header_len {
                        Err("child box runs past its parent")
                    } else {
                        let len = len as usize;
                        self.pos += len;
                        Ok((h.fourcc, &rest[h.header_len as usize..len]))
                    }
                }
                Ok(None) => Err("truncated child box header"),
                Err(e) => Err(e),
            };
            if r.is_err() {
                self.pos = self.b.len();
            }
            Some(r)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_round_trip() {
        let mut out = Vec::new();
        write_box(&mut out, b"moov", |o| {
            write_full_box(o, b"mvhd", 1, 0x020001, |o| u32be(o, 7));
            write_box(o, b"free", |_| {});
        });
        let h = parse_header(&out).unwrap().unwrap();
        assert_eq!((&h.fourcc, h.len), (b"moov", Some(out.len() as u64)));
        let kids: Vec<_> = Reader::new(&out[8..])
            .children()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(kids.len(), 2);
        assert_eq!(&kids[0].0, b"mvhd");
        let mut r = Reader::new(kids[0].1);
        assert_eq!(r.full_header().unwrap(), (1, 0x020001));
        assert_eq!(r.u32().unwrap(), 7);
        assert!(r.u8().is_err());
        assert_eq!((&kids[1].0, kids[1].1.len()), (b"free", 0));
    }

    #[test]
    fn malformed_headers() {
        assert_eq!(parse_header(&[0, 0, 0]).unwrap(), None);
        assert!(parse_header(&[0, 0, 0, 4, b'a', b'b', b'c', b'd']).is_err());
        assert!(
            parse_header(&[0, 0, 0, 1, b'a', b'b', b'c', b'd', 0, 0, 0, 0, 0, 0, 0, 3]).is_err()
        );
        let kids: Vec<_> = Reader::new(&[0, 0, 0, 100, b'a', b'b', b'c', b'd'])
            .children()
            .collect();
        assert_eq!(kids.len(), 1);
        assert!(kids[0].is_err());
    }
}
