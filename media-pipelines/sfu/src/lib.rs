//! The forwarding core shared by live view and meetings: publishers (a camera's stream now,
//! a meeting participant later) and WebRTC subscribers, forwarding packets without decoding
//! them. Sans-IO: [`Core`] is driven by `handle_input(now, …)` and drained by
//! `poll_output()`; the binary owns the sockets and the clock.
//!
//! - [`h264`]: access units to RTP payloads (once per source), parameter sets.
//! - [`source`]: a publisher's tracks, packetized frames and current GOP.
//! - [`session`]: one subscriber, a str0m `Rtc` kept behind our own types.
//! - [`peer`]: one meeting participant (publishes and receives through slots).
//! - [`vp8`]: the VP8 payload descriptor: keyframes, picture renumbering per slot.
//! - [`vp9`]: the VP9 payload descriptor: keyframes, picture renumbering per slot.
//! - [`av1`]: AV1's aggregation header: keyframes.
//! - [`red`]: redundant audio (RFC 2198): the primary block, for subscribers without it.
//! - [`alloc`]: simulcast layer choice per subscriber (pure).
//! - [`core`]: sources, sessions, meeting rooms (which track each slot carries, the active
//!   speaker), trunks to the same meeting at other nodes, demultiplexing, timeouts.
//! - [`viewer`]: a receive-only peer that checks what arrives (load client, tests).
//! - [`participant`]: a meeting participant that publishes and checks what its slots get
//!   (tests, the meeting load client).
//!
//! Why str0m, and how the choice is contained: docs/design/sfu.md.

pub mod alloc;
pub mod av1;
pub mod core;
pub mod h264;
pub mod h265;
pub mod participant;
pub mod peer;
pub mod red;
pub mod session;
pub mod source;
pub mod viewer;
pub mod vp8;
pub mod vp9;

pub use crate::core::{
    Closed, Core, Counters, Input, Output, SessionId, SlotsUpdate, SourceId, TrunkCodec, TrunkId,
    TrunkRtp, TrunkTrack, TrunkWant,
};
pub use peer::{Feed, TrackKind};
pub use session::{Proto, SessionError, Transmit};
pub use source::{Kind, MediaFrame, Tracks};

/// Installs the process-wide crypto provider str0m uses (AWS-LC: AES-GCM and DTLS).
/// Call once at start; later calls do nothing.
pub fn init_crypto() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| str0m::crypto::from_feature_flags().install_process_default());
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Helpers for the unit tests of this crate's parsers.

    /// `count` deterministic garbage payloads of up to `max_len` bytes (xorshift from
    /// `seed`): parsers must never panic on them.
    pub fn garbage(seed: u64, count: usize, max_len: usize) -> Vec<Vec<u8>> {
        let mut x = seed | 1;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        (0..count)
            .map(|_| {
                let n = (next() % (max_len as u64 + 1)) as usize;
                (0..n).map(|_| next() as u8).collect()
            })
            .collect()
    }
}
