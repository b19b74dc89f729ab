//! What a meeting's trunk sends on a link (sans I/O): each published packet as a binary
//! frame of type [`MEETING_RTP`], and the trunk's control (which publishers each side
//! gives, which tracks and layers it needs, keyframe requests) as the link's JSON
//! messages ([`TrunkMsg`], carried in `Msg::Meeting`). The forwarding core's side of a
//! trunk is `xaso_sfu::core` (its `trunk` module); docs/design/federation.md, "Meetings
//! across levels", has the model.
//!
//! Everything read here comes from the other node: lengths, names and lists are bounded,
//! and a frame that does not parse is an error for the link (not a panic).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use xaso_sfu::{TrackKind, TrunkCodec, TrunkRtp, TrunkTrack, TrunkWant};

/// The first byte of a binary frame that carries a meeting's packet.
pub const MEETING_RTP: u8 = 3;
/// Bytes before the rid: type, meeting (i64), publisher (u64), track, codec, flags, audio
/// level, payload type, rid length.
const FIXED: usize = 1 + 8 + 8 + 1 + 1 + 1 + 1 + 1 + 1;
/// Then the sequence number (u64) and the timestamp (u32) after the rid.
const AFTER_RID: usize = 8 + 4;
/// The longest rid (RFC 8851 allows more; pages use one to three letters).
pub const MAX_RID: usize = 16;
/// The largest payload: an RTP packet's, with room (browsers keep to ~1,200 bytes).
pub const MAX_PAYLOAD: usize = 1500;
/// At most this many tracks per publisher, layers per track, wants per message.
pub const MAX_TRACKS: usize = 4;
pub const MAX_LAYERS: usize = 4;
pub const MAX_WANTS: usize = 4096;

const FLAG_MARKER: u8 = 1;
const FLAG_RED: u8 = 2;
const FLAG_LEVEL: u8 = 4;

fn track_byte(t: TrackKind) -> u8 {
    match t {
        TrackKind::Mic => 0,
        TrackKind::Camera => 1,
        TrackKind::Screen => 2,
    }
}

fn track_of(b: u8) -> Option<TrackKind> {
    match b {
        0 => Some(TrackKind::Mic),
        1 => Some(TrackKind::Camera),
        2 => Some(TrackKind::Screen),
        _ => None,
    }
}

/// Whether `rid` may cross (and be given to str0m): 1 to [`MAX_RID`] letters, digits,
/// `-` or `_`.
fn rid_ok(rid: &str) -> bool {
    (1..=MAX_RID).contains(&rid.len())
        && rid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// One packet of `publisher` (the sender's id) in meeting `meeting`.
pub fn encode(meeting: i64, publisher: u64, p: &TrunkRtp) -> Bytes {
    let rid = p.rid.as_deref().unwrap_or("");
    let mut b = BytesMut::with_capacity(FIXED + rid.len() + AFTER_RID + p.payload.len());
    b.put_u8(MEETING_RTP);
    b.put_i64(meeting);
    b.put_u64(publisher);
    b.put_u8(track_byte(p.track));
    b.put_u8(p.codec as u8);
    let mut flags = 0;
    if p.marker {
        flags |= FLAG_MARKER;
    }
    if p.red {
        flags |= FLAG_RED;
    }
    if p.audio_level.is_some() {
        flags |= FLAG_LEVEL;
    }
    b.put_u8(flags);
    b.put_u8(p.audio_level.unwrap_or(0));
    b.put_u8(p.pt);
    b.put_u8(rid.len() as u8);
    b.put_slice(rid.as_bytes());
    b.put_u64(p.seq);
    b.put_u32(p.ts);
    b.put_slice(&p.payload);
    b.freeze()
}

/// A meeting packet frame: (meeting, publisher in the sender's ids, packet).
pub fn decode(frame: &[u8]) -> Result<(i64, u64, TrunkRtp), String> {
    if frame.len() < FIXED {
        return Err(format!("a meeting frame of {} bytes", frame.len()));
    }
    let mut b = frame;
    if b.get_u8() != MEETING_RTP {
        return Err("not a meeting frame".into());
    }
    let meeting = b.get_i64();
    let publisher = b.get_u64();
    let track = track_of(b.get_u8()).ok_or("a meeting frame of an unknown track")?;
    let codec = TrunkCodec::from_u8(b.get_u8()).ok_or("a meeting frame of an unknown codec")?;
    let flags = b.get_u8();
    let level = b.get_u8();
    let pt = b.get_u8();
    let rid_len = b.get_u8() as usize;
    if rid_len > MAX_RID || b.len() < rid_len + AFTER_RID {
        return Err("a meeting frame cut short".into());
    }
    let rid = match rid_len {
        0 => None,
        n => {
            let r = std::str::from_utf8(&b[..n]).map_err(|_| "a meeting frame's rid")?;
            if !rid_ok(r) {
                return Err(format!("a meeting frame's rid {r:?}"));
            }
            Some(r.to_owned())
        }
    };
    b.advance(rid_len);
    let seq = b.get_u64();
    let ts = b.get_u32();
    if b.len() > MAX_PAYLOAD {
        return Err(format!("a meeting payload of {} bytes", b.len()));
    }
    if pt > 127 || level > 127 {
        return Err("a meeting frame's payload type or level".into());
    }
    Ok((
        meeting,
        publisher,
        TrunkRtp {
            track,
            rid,
            pt,
            codec,
            red: flags & FLAG_RED != 0,
            seq,
            ts,
            marker: flags & FLAG_MARKER != 0,
            audio_level: (flags & FLAG_LEVEL != 0).then_some(level),
            payload: Arc::from(b),
        },
    ))
}

/// A track a trunk's side gives, on the wire.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WireTrack {
    /// `mic`, `camera` or `screen`.
    pub track: String,
    /// Simulcast layers, lowest first: (rid, bits per second); one with no rid without.
    pub layers: Vec<(Option<String>, u64)>,
}

/// A document of a meeting, as it is offered to another node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocOffer {
    pub sha256: String,
    pub name: String,
    pub mime: String,
    pub bytes: u64,
    /// Who shared it (their name where they did).
    pub from: String,
    pub at_ms: i64,
}

/// The trunk's control, one message per change (`Msg::Meeting` carries it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum TrunkMsg {
    /// The sender's end of the trunk is open: the receiver says everything again (what it
    /// said before may have come before the sender's end was there).
    Open,
    /// The sender gives `publisher`'s tracks (new or changed); `participant` is the
    /// meeting's id of who publishes them (for the pages' slot reports).
    Publish {
        publisher: u64,
        participant: u64,
        tracks: Vec<WireTrack>,
    },
    /// `publisher` is gone.
    Unpublish { publisher: u64 },
    /// The sender needs these of the receiver's publishers (replaces the last list):
    /// (publisher, track, rid).
    Want {
        wants: Vec<(u64, String, Option<String>)>,
    },
    /// The sender asks for a keyframe of the receiver's publisher's track.
    Keyframe {
        publisher: u64,
        track: String,
        #[serde(default)]
        rid: Option<String>,
    },
    /// The participants at the node `from` (a random key of that node's process), as its
    /// pages show them, `node` naming it for people: its path below the highest node the
    /// list passed on its way, the nearest common ancestor (the sender says `""`, each link
    /// up puts the child's name in front, lists going down keep it). Passed on over the
    /// meeting's other trunks, so every node knows everyone. Sent on every change and every few seconds
    /// (an entry not heard of again for [`PARTS_EXPIRE_MS`] is dropped).
    Parts {
        from: String,
        node: String,
        list: Vec<serde_json::Value>,
    },
    /// A chat message written at another node (passed on likewise).
    Chat {
        from: String,
        name: String,
        participant: u64,
        text: String,
        at_ms: i64,
    },
    /// Parent → child only: the chair's action on participant `target` (wherever it is:
    /// passed down until the node that has it).
    Chair {
        action: String,
        target: u64,
        #[serde(default)]
        kind: Option<String>,
    },
    /// Home → down only: a vote's state as the meeting's home has it (`vote_json`: the
    /// question, options, how many voted, and once closed the tally and, unless secret,
    /// who chose what). Sent on every change and every few seconds.
    Vote { vote: serde_json::Value },
    /// Up only, toward the meeting's home, which counts it: a ballot cast at a node below.
    /// `voter` is the voter's key at its node (`user:3`, `guest:an`); each link up puts the
    /// child's name in front, so that one voter at one node is one ballot at the top.
    Ballot {
        vote: i64,
        voter: String,
        name: String,
        option: i64,
    },
    /// A document shared in the meeting (at the sender or beyond it), offered: the receiver
    /// asks for its bytes (`document_want`) unless it has them (`federation::documents`).
    Document(DocOffer),
    /// The sender has not that document: send its bytes (binary frames of type 4).
    DocumentWant { sha256: String },
    /// An operation of a later version (ignored).
    #[serde(other)]
    Unknown,
}

/// A node's participants not heard of again for this long are dropped from the lists.
pub const PARTS_EXPIRE_MS: i64 = 15_000;
/// At most this many participants in one node's list, and characters in a name or text.
pub const MAX_PARTS: usize = 1000;

fn kind(s: &str) -> Result<TrackKind, String> {
    TrackKind::parse(s).ok_or_else(|| format!("unknown track {s:?}"))
}

fn rid_in(r: &Option<String>) -> Result<(), String> {
    match r {
        Some(r) if !rid_ok(r) => Err(format!("bad rid {r:?}")),
        _ => Ok(()),
    }
}

/// The core's announcement, for the wire.
pub fn tracks_out(tracks: &[TrunkTrack]) -> Vec<WireTrack> {
    tracks
        .iter()
        .map(|t| WireTrack {
            track: t.track.as_str().into(),
            layers: t.layers.clone(),
        })
        .collect()
}

/// An announcement from the wire, checked.
pub fn tracks_in(tracks: &[WireTrack]) -> Result<Vec<TrunkTrack>, String> {
    if tracks.len() > MAX_TRACKS {
        return Err(format!("{} tracks of one publisher", tracks.len()));
    }
    tracks
        .iter()
        .map(|t| {
            if t.layers.is_empty() || t.layers.len() > MAX_LAYERS {
                return Err(format!("{} layers of one track", t.layers.len()));
            }
            for (r, _) in &t.layers {
                rid_in(r)?;
            }
            Ok(TrunkTrack {
                track: kind(&t.track)?,
                layers: t.layers.clone(),
            })
        })
        .collect()
}

/// The core's wants, for the wire.
pub fn wants_out(wants: &[TrunkWant]) -> Vec<(u64, String, Option<String>)> {
    wants
        .iter()
        .map(|(p, k, r)| (*p, k.as_str().to_owned(), r.clone()))
        .collect()
}

/// Wants from the wire, checked.
pub fn wants_in(wants: &[(u64, String, Option<String>)]) -> Result<Vec<TrunkWant>, String> {
    if wants.len() > MAX_WANTS {
        return Err(format!("{} wants in one message", wants.len()));
    }
    wants
        .iter()
        .map(|(p, k, r)| {
            rid_in(r)?;
            Ok((*p, kind(k)?, r.clone()))
        })
        .collect()
}

/// Room state from the wire, bounded.
pub fn check_state(op: &TrunkMsg) -> Result<(), String> {
    let long = |s: &str, n: usize| s.chars().count() > n;
    match op {
        TrunkMsg::Parts { from, node, list } => {
            if long(from, 64) || long(node, 200) || list.len() > MAX_PARTS {
                return Err("a participants list too long".into());
            }
            if list
                .iter()
                .any(|p| !p.is_object() || p.to_string().len() > 2000)
            {
                return Err("a participants list with a bad entry".into());
            }
        }
        TrunkMsg::Chat {
            from, name, text, ..
        } if long(from, 64) || long(name, 200) || long(text, 2000) => {
            return Err("a chat message too long".into());
        }
        TrunkMsg::Vote { vote } if !vote.is_object() || vote.to_string().len() > 20_000 => {
            return Err("a vote's state too long or not an object".into());
        }
        TrunkMsg::Ballot { voter, name, .. } if long(voter, 1000) || long(name, 200) => {
            return Err("a ballot's voter too long".into());
        }
        TrunkMsg::Document(DocOffer {
            sha256,
            name,
            mime,
            from,
            ..
        }) if !super::documents::sha_ok(sha256)
            || long(name, 200)
            || long(mime, 100)
            || long(from, 300) =>
        {
            return Err("a document offer with a bad hash or too long a name".into());
        }
        TrunkMsg::DocumentWant { sha256 } if !super::documents::sha_ok(sha256) => {
            return Err("a document asked for by a bad hash".into());
        }
        TrunkMsg::Chair { action, kind, .. }
            if long(action, 32) || kind.as_deref().is_some_and(|k| long(k, 16)) =>
        {
            return Err("a chair's action too long".into());
        }
        _ => {}
    }
    Ok(())
}

/// A keyframe request's track and rid from the wire, checked.
pub fn keyframe_in(track: &str, rid: &Option<String>) -> Result<TrackKind, String> {
    rid_in(rid)?;
    kind(track)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(rid: Option<&str>, level: Option<u8>) -> TrunkRtp {
        TrunkRtp {
            track: TrackKind::Camera,
            rid: rid.map(Into::into),
            pt: 96,
            codec: TrunkCodec::Vp8,
            red: false,
            seq: 70_000,
            ts: 0xdead_beef,
            marker: true,
            audio_level: level,
            payload: Arc::from(&b"\x90\x80\x12\x34payload"[..]),
        }
    }

    #[test]
    fn packets_cross_whole() {
        for p in [
            packet(Some("h"), None),
            packet(None, Some(30)),
            TrunkRtp {
                track: TrackKind::Mic,
                codec: TrunkCodec::Opus,
                red: true,
                marker: false,
                ..packet(None, Some(0))
            },
        ] {
            let b = encode(-5, 1 << 40, &p);
            assert_eq!(decode(&b), Ok((-5, 1 << 40, p)));
        }
    }

    #[test]
    fn broken_frames_are_errors_not_panics() {
        let good = encode(1, 2, &packet(Some("m"), None)).to_vec();
        // Every prefix of a good frame, and every byte of its header changed.
        for n in 0..FIXED + 1 + AFTER_RID {
            let _ = decode(&good[..n]);
            assert!(decode(&good[..n]).is_err(), "{n} bytes");
        }
        for i in 0..FIXED + 1 + AFTER_RID {
            for v in [0u8, 3, 17, 128, 255] {
                let mut b = good.clone();
                b[i] = v;
                let _ = decode(&b);
            }
        }
        let mut x = 0x1234_5678_9abc_def1u64;
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let n = (x % 64) as usize;
            let mut b: Vec<u8> = (0..n).map(|i| (x >> (i % 8 * 8)) as u8).collect();
            if let Some(first) = b.first_mut() {
                *first = MEETING_RTP;
            }
            let _ = decode(&b);
        }
        let mut bad_rid = good.clone();
        bad_rid[FIXED] = b' ';
        assert!(decode(&bad_rid).is_err(), "a rid with a space");
        let mut long = good.clone();
        long.extend(std::iter::repeat_n(0, MAX_PAYLOAD));
        assert!(decode(&long).is_err(), "an oversized payload");
    }

    #[test]
    fn control_from_the_wire_is_checked() {
        let t = vec![WireTrack {
            track: "camera".into(),
            layers: vec![(Some("l".into()), 150_000), (Some("h".into()), 900_000)],
        }];
        let back = tracks_in(&t).unwrap();
        assert_eq!(tracks_out(&back), t);
        let bad = |track: &str, rid: Option<&str>, n: usize| WireTrack {
            track: track.into(),
            layers: vec![(rid.map(Into::into), 1); n],
        };
        assert!(tracks_in(&[bad("radio", None, 1)]).is_err());
        assert!(tracks_in(&[bad("mic", Some("a b"), 1)]).is_err());
        assert!(tracks_in(&[bad("mic", None, 0)]).is_err());
        assert!(tracks_in(&[bad("mic", None, 9)]).is_err());
        assert!(tracks_in(&vec![bad("mic", None, 1); 5]).is_err());
        let w = vec![
            (3, "mic".to_string(), None),
            (4, "camera".into(), Some("l".into())),
        ];
        assert_eq!(wants_out(&wants_in(&w).unwrap()), w);
        assert!(wants_in(&[(3, "tv".into(), None)]).is_err());
        assert!(wants_in(&vec![(3, "mic".into(), None); MAX_WANTS + 1]).is_err());
        assert!(keyframe_in("camera", &Some("x".repeat(17))).is_err());
        // Inside the link's message, flattened beside the meeting id.
        let m = crate::federation::proto::Msg::Meeting {
            meeting: 1 << 45,
            op: TrunkMsg::Want { wants: w },
        };
        let s = serde_json::to_string(&m).unwrap();
        assert!(
            s.contains(r#""t":"meeting""#) && s.contains(r#""op":"want""#),
            "{s}"
        );
        assert_eq!(
            serde_json::from_str::<crate::federation::proto::Msg>(&s).unwrap(),
            m
        );
        // A trunk operation of a later version is not a broken message.
        let later = r#"{"t":"meeting","meeting":5,"op":"mix","x":1}"#;
        assert!(serde_json::from_str::<crate::federation::proto::Msg>(later).is_ok());
    }
}
