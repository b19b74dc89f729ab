//! AV1's RTP aggregation header (the AV1 RTP specification §4.4), as far as forwarding
//! needs it: whether a packet starts a keyframe. AV1 carries no picture numbers in its
//! payload; a receiver orders its frames by sequence number, which a slot rewrites anyway.
//! Pure; no I/O.

/// The first packet of a new coded video sequence (aggregation header Z|Y|W W|N: N set,
/// Z clear), which starts with a keyframe.
pub fn keyframe_start(p: &[u8]) -> bool {
    p.first().is_some_and(|h| h & 0x80 == 0 && h & 0x08 != 0)
}

#[cfg(test)]
mod tests {
    use super::keyframe_start;

    #[test]
    fn a_new_coded_video_sequence_starts_a_keyframe() {
        assert!(keyframe_start(&[0x18, 0x0a]));
        // N clear; or Z set (the first element continues an earlier packet's).
        assert!(!keyframe_start(&[0x10, 0x0a]));
        assert!(!keyframe_start(&[0x88, 0x0a]));
        assert!(!keyframe_start(&[]));
    }
}
