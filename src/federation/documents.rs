//! A meeting's documents across nodes. A document shared at one node (uploaded there, or
//! come from another) is offered over each of the meeting's other trunks (`document`: its
//! hash, name, type, size, who shared it, when); a node that has not got it asks for it
//! (`document_want`), and the bytes follow as binary frames of type [`DOC_CHUNK`] behind the
//! link's live media (`Outbox::push_bulk`). The receiving node checks size and hash, keeps
//! the file as its own (the same content-addressed folder as an upload), records it in the
//! meeting's record, shows it to its pages and offers it on. A trunk that opens (a link up,
//! a node that joins late) is offered every document of the meeting, so every node ends
//! with every document, each crossing each link once.

use super::Federation;
use super::meetings::{DocOffer, TrunkMsg};
use super::proto::Msg;
use super::trunks::LinkKey;
use crate::meetings::store::{self, Document};
use bytes::{BufMut, Bytes, BytesMut};
use sha2::Digest;
use std::io::Write;
use std::path::PathBuf;

/// The first byte of a document's chunk on the link.
pub const DOC_CHUNK: u8 = 4;
/// Bytes of a document per frame.
const CHUNK: usize = 32 * 1024;
/// A chunk waits while this much media is queued on the link (media goes first).
const BULK_LIMIT: usize = 128 * 1024;
/// Documents being received over one link at once, at most.
const MAX_PARTIALS: usize = 8;

/// Whether `s` is a SHA-256 in lowercase hex (a document's name on disk).
pub fn sha_ok(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A chunk for the wire: type, meeting, the document's hash, the offset, the bytes.
pub fn encode_chunk(meeting: i64, sha: &[u8; 32], offset: u64, data: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(49 + data.len());
    b.put_u8(DOC_CHUNK);
    b.put_i64(meeting);
    b.put_slice(sha);
    b.put_u64(offset);
    b.put_slice(data);
    b.freeze()
}

/// A chunk from the wire: (meeting, hash in hex, offset, bytes).
pub fn decode_chunk(b: &[u8]) -> Result<(i64, String, u64, &[u8]), String> {
    if b.len() < 49 || b[0] != DOC_CHUNK {
        return Err(format!("a document chunk of {} bytes", b.len()));
    }
    let meeting = i64::from_be_bytes(b[1..9].try_into().expect("8 bytes"));
    let sha = hex::encode(&b[9..41]);
    let offset = u64::from_be_bytes(b[41..49].try_into().expect("8 bytes"));
    Ok((meeting, sha, offset, &b[49..]))
}

/// Where documents are kept, and how large one may be (set at start).
pub struct DocumentsAt {
    /// `<data>/meetings`: a meeting's documents are in its folder, by hash.
    pub dir: PathBuf,
    pub max_bytes: u64,
}

/// A document being received.
pub(super) struct Partial {
    offer: Offer,
    part: PathBuf,
    file: std::fs::File,
    got: u64,
    hasher: sha2::Sha256,
}

/// A document offered for a meeting.
#[derive(Clone)]
struct Offer {
    meeting: i64,
    doc: DocOffer,
}

fn offer_msg(doc: &Document) -> Msg {
    Msg::Meeting {
        meeting: doc.meeting_id,
        op: TrunkMsg::Document(DocOffer {
            sha256: doc.sha256.clone(),
            name: doc.name.clone(),
            mime: doc.mime.clone(),
            bytes: doc.bytes.max(0) as u64,
            from: doc.uploader.clone(),
            at_ms: doc.at_ms,
        }),
    }
}

impl Federation {
    /// Where documents are kept (at start).
    pub fn set_documents(&self, at: DocumentsAt) {
        let _ = self.documents_at.set(at);
    }

    /// Document `doc` is here now (shared here, or come over link `from`): offered over
    /// the meeting's other trunks.
    pub fn document_offer(&self, doc: &Document, from: Option<LinkKey>) {
        let outs: Vec<_> = self
            .trunks
            .lock()
            .unwrap()
            .iter()
            .filter(|((k, m), _)| *m == doc.meeting_id && Some(*k) != from)
            .map(|(_, v)| v.1.clone())
            .collect();
        let msg = offer_msg(doc);
        for out in outs {
            out.send(&msg);
        }
    }

    /// A trunk of `meeting` opened on link `key`: every document of the meeting is offered
    /// on it (the far side asks for those it has not got).
    pub(super) fn offer_all_documents(&self, key: LinkKey, meeting: i64) {
        let Some(me) = self.me.upgrade() else { return };
        tokio::spawn(async move {
            let docs = match store::documents(&me.db, meeting).await {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(meeting, error = %e, "cannot list a meeting's documents");
                    return;
                }
            };
            let out = me
                .trunks
                .lock()
                .unwrap()
                .get(&(key, meeting))
                .map(|v| v.1.clone());
            if let Some(out) = out {
                for d in &docs {
                    out.send(&offer_msg(d));
                }
            }
        });
    }

    /// `document` or `document_want` of `meeting` over link `key`.
    pub(super) fn document_msg(&self, key: LinkKey, meeting: i64, op: TrunkMsg) {
        let Some(me) = self.me.upgrade() else { return };
        match op {
            TrunkMsg::Document(doc) => {
                let offer = Offer { meeting, doc };
                tokio::spawn(async move { me.offered(key, offer).await });
            }
            TrunkMsg::DocumentWant { sha256 } => {
                tokio::spawn(async move { me.send_document(key, meeting, sha256).await });
            }
            _ => {}
        }
    }

    /// A document offered over link `key`: asked for unless it is here (or too large).
    async fn offered(&self, key: LinkKey, o: Offer) {
        let Some(at) = self.documents_at.get() else {
            return;
        };
        match store::documents(&self.db, o.meeting).await {
            Ok(d) if d.iter().any(|d| d.sha256 == o.doc.sha256) => return,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(meeting = o.meeting, error = %e, "cannot list a meeting's documents");
                return;
            }
        }
        if o.doc.bytes == 0 || o.doc.bytes > at.max_bytes {
            tracing::warn!(meeting = o.meeting, name = %o.doc.name, bytes = o.doc.bytes,
                "a document from another node over this node's size limit: not taken");
            return;
        }
        let dir = at.dir.join(o.meeting.to_string());
        let part = dir.join(format!("upload-{}.part", crate::auth::new_secret("")));
        let file = std::fs::create_dir_all(&dir).and_then(|()| std::fs::File::create(&part));
        let file = match file {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(path = %part.display(), error = %e, "cannot receive a document");
                return;
            }
        };
        let out = {
            let mut partials = self.documents_in.lock().unwrap();
            let k = (key, o.meeting, o.doc.sha256.clone());
            // (One copy at a time, whichever link it is offered on.)
            if partials
                .keys()
                .any(|p| p.1 == o.meeting && p.2 == o.doc.sha256)
                || partials.keys().filter(|p| p.0 == key).count() >= MAX_PARTIALS
            {
                drop(partials);
                let _ = std::fs::remove_file(&part);
                return;
            }
            partials.insert(
                k,
                Partial {
                    offer: o.clone(),
                    part,
                    file,
                    got: 0,
                    hasher: sha2::Sha256::new(),
                },
            );
            self.trunks
                .lock()
                .unwrap()
                .get(&(key, o.meeting))
                .map(|v| v.1.clone())
        };
        if let Some(out) = out {
            out.send(&Msg::Meeting {
                meeting: o.meeting,
                op: TrunkMsg::DocumentWant {
                    sha256: o.doc.sha256.clone(),
                },
            });
        }
    }

    /// The far side of link `key` asked for a document: its bytes, behind the live media.
    async fn send_document(&self, key: LinkKey, meeting: i64, sha256: String) {
        use tokio::io::AsyncReadExt;
        let Some(at) = self.documents_at.get() else {
            return;
        };
        match store::documents(&self.db, meeting).await {
            Ok(d) if d.iter().any(|d| d.sha256 == sha256) => {}
            _ => return, // (not a document of that meeting here)
        }
        let Some(out) = self
            .trunks
            .lock()
            .unwrap()
            .get(&(key, meeting))
            .map(|v| v.1.clone())
        else {
            return;
        };
        let path = at.dir.join(meeting.to_string()).join(&sha256);
        let mut f = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "cannot read a document to send");
                return;
            }
        };
        let mut sha = [0u8; 32];
        hex::decode_to_slice(&sha256, &mut sha).expect("checked hex");
        let mut buf = vec![0u8; CHUNK];
        let mut offset = 0u64;
        loop {
            let n = match f.read(&mut buf).await {
                Ok(0) => return,
                Ok(n) => n,
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "cannot read a document to send");
                    return;
                }
            };
            out.push_bulk(encode_chunk(meeting, &sha, offset, &buf[..n]), BULK_LIMIT)
                .await;
            offset += n as u64;
            if !self.trunks.lock().unwrap().contains_key(&(key, meeting)) {
                return; // the link or the meeting went away
            }
        }
    }

    /// A chunk of a document over link `key`. One that does not follow what came, or goes
    /// past the offered size, or a document whose hash is not the offered one, is dropped.
    pub(super) fn document_chunk(&self, key: LinkKey, frame: &[u8]) -> Result<(), String> {
        let (meeting, sha, offset, data) = decode_chunk(frame)?;
        let k = (key, meeting, sha);
        let done = {
            let mut partials = self.documents_in.lock().unwrap();
            let Some(p) = partials.get_mut(&k) else {
                return Ok(()); // (not asked for, or given up)
            };
            let bad = if offset != p.got || p.got + data.len() as u64 > p.offer.doc.bytes {
                Some(format!("a chunk at {offset} of {} bytes", data.len()))
            } else {
                p.file.write_all(data).err().map(|e| e.to_string())
            };
            if let Some(why) = bad {
                let p = partials.remove(&k).expect("got above");
                let _ = std::fs::remove_file(&p.part);
                tracing::warn!(name = %p.offer.doc.name, %why, "a document from another node dropped");
                return Ok(());
            }
            p.got += data.len() as u64;
            p.hasher.update(data);
            if p.got < p.offer.doc.bytes {
                return Ok(());
            }
            partials.remove(&k).expect("got above")
        };
        if let Some(me) = self.me.upgrade() {
            tokio::spawn(async move { me.received(key, done).await });
        }
        Ok(())
    }

    /// A document came whole: checked, kept, recorded, shown and offered on.
    async fn received(&self, key: LinkKey, p: Partial) {
        let Partial {
            offer: o,
            part,
            file,
            hasher,
            ..
        } = p;
        let sha = hex::encode(hasher.finalize());
        let synced = tokio::task::spawn_blocking(move || file.sync_all())
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|r| r);
        if sha != o.doc.sha256 || synced.is_err() {
            let _ = tokio::fs::remove_file(&part).await;
            tracing::warn!(name = %o.doc.name, "a document from another node did not match its hash: dropped");
            return;
        }
        let Some(at) = self.documents_at.get() else {
            return;
        };
        let path = at.dir.join(o.meeting.to_string()).join(&sha);
        if let Err(e) = tokio::fs::rename(&part, &path).await {
            tracing::error!(path = %path.display(), error = %e, "cannot keep a document");
            return;
        }
        let added = store::add_document(
            &self.db,
            o.meeting,
            &o.doc.name,
            &o.doc.mime,
            o.doc.bytes as i64,
            &sha,
            &o.doc.from,
            None,
            o.doc.at_ms,
        )
        .await;
        let doc = match added {
            Ok(id) => store::document(&self.db, o.meeting, id).await,
            Err(e) => Err(e),
        };
        match doc {
            Ok(doc) => {
                if let Some(hub) = self.meeting_hub.get() {
                    hub.document_added(&doc);
                }
                self.document_offer(&doc, Some(key));
            }
            Err(e) => tracing::error!(error = %e, "cannot record a document from another node"),
        }
    }

    /// Link `key` ended: the documents coming over it are given up (offered again when it
    /// comes back).
    pub(super) fn documents_link_gone(&self, key: LinkKey) {
        let mut partials = self.documents_in.lock().unwrap();
        let gone: Vec<_> = partials.keys().filter(|k| k.0 == key).cloned().collect();
        for k in gone {
            if let Some(p) = partials.remove(&k) {
                let _ = std::fs::remove_file(&p.part);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_round_trips_and_a_short_one_is_an_error() {
        let sha = [7u8; 32];
        let b = encode_chunk(42, &sha, 65_536, b"abc");
        let (m, s, off, data) = decode_chunk(&b).unwrap();
        assert_eq!((m, off, data), (42, 65_536, &b"abc"[..]));
        assert_eq!(s, hex::encode(sha));
        assert!(sha_ok(&s));
        assert!(decode_chunk(&b[..40]).is_err());
        assert!(!sha_ok("../../etc/passwd"));
        assert!(!sha_ok(&"A".repeat(64)));
    }
}
