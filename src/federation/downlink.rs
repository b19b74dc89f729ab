//! The parent's end of a child's link: the child was authenticated by its secret when its
//! WebSocket was accepted (`GET /api/federation/link`); this greets it, keeps its figures
//! and the tree it reports in the hub, feeds the streams it relays into their taps
//! (`relay::Inbound`), and records the link going up and down.

use super::archive;
use super::link::{self, End, LinkIo, Side};
use super::proto::{LinkCore, Msg, PROTO, TreeNode};
use super::store::{self, NodeRow};
use super::trunks::LinkKey;
use super::{ChildIo, ChildLink, Federation};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::{Notify, watch};

struct Child<'a> {
    fed: &'a Federation,
    id: i64,
    name: String,
    link: u64,
    io: ChildIo,
    /// Why the link must end (a broken relayed frame), found where no error can be returned.
    broken: Option<String>,
    /// Camera streams' bytes since the window began, and the rate last given to the
    /// meetings' budgets (`Federation::link_rate`).
    relay: (std::time::Instant, u64, u64),
}

/// How often the camera streams' rate on a link is measured.
const RELAY_WINDOW: std::time::Duration = std::time::Duration::from_secs(1);

impl Child<'_> {
    /// Closes the camera streams' window when it is over, and gives the meetings' budgets
    /// the rate if it moved (by a tenth, or 50 kbit/s).
    fn measure_relay(&mut self) {
        let now = std::time::Instant::now();
        let (since, bytes, last) = self.relay;
        let took = now.saturating_duration_since(since);
        if took < RELAY_WINDOW {
            return;
        }
        let bps = (bytes as f64 * 8.0 / took.as_secs_f64()) as u64;
        self.relay = (now, 0, last);
        let d = bps.abs_diff(last);
        if d * 10 > last.max(1) && d >= 50_000 || (bps == 0) != (last == 0) {
            self.relay.2 = bps;
            self.fed
                .link_rate(LinkKey::Child(self.link), None, Some(bps));
        }
    }
}

impl Child<'_> {
    fn with<R>(&self, f: impl FnOnce(&mut ChildLink) -> R) -> Option<R> {
        let mut m = self.fed.children.lock().unwrap();
        m.get_mut(&self.id).filter(|c| c.link == self.link).map(f)
    }
}

impl Side for Child<'_> {
    fn on_msg(&mut self, _: &mut LinkCore, m: Msg) -> Result<(), String> {
        match m {
            Msg::Hello { proto, version } => {
                if proto < PROTO {
                    return Err(format!(
                        "the child speaks link protocol {proto}; this parent needs {PROTO}: update the child's xaso"
                    ));
                }
                self.with(|c| c.version = Some(version));
            }
            Msg::Cameras { cameras } => {
                self.fed.queue_report(self.id, &self.name, cameras);
            }
            Msg::Tree { nodes } => {
                let nodes = bounded(nodes, 0);
                self.with(|c| c.tree = nodes);
                self.fed.tree_changed.notify_one();
            }
            Msg::Tracks { ch, video, audio } => {
                self.io.inbound.lock().unwrap().tracks(ch, video, audio)?;
            }
            Msg::Restart { ch } => self.io.inbound.lock().unwrap().restart(ch),
            Msg::Res {
                id,
                status,
                headers,
            } => self.io.requests.lock().unwrap().head(id, status, headers),
            Msg::ResEnd { id, error } => self.io.requests.lock().unwrap().end(id, error),
            Msg::Meeting { meeting, op } => {
                self.fed
                    .meeting_msg(LinkKey::Child(self.link), meeting, op)?;
            }
            Msg::Rate { bps } => self
                .fed
                .link_rate(LinkKey::Child(self.link), Some(bps), None),
            Msg::Unwatched { ch, reason } => {
                tracing::info!(node = %self.name, ch, %reason, "the child stopped a relayed stream");
                self.io.inbound.lock().unwrap().close(ch);
            }
            other => tracing::debug!(node = self.id, msg = ?other, "link message ignored"),
        }
        Ok(())
    }

    fn on_binary(&mut self, _: &mut LinkCore, frame: bytes::Bytes) {
        let r = if frame.first() == Some(&archive::CHUNK) {
            self.io.requests.lock().unwrap().chunk(&frame)
        } else if frame.first() == Some(&super::meetings::MEETING_RTP) {
            self.fed.meeting_frame(LinkKey::Child(self.link), &frame)
        } else if frame.first() == Some(&super::documents::DOC_CHUNK) {
            self.fed.document_chunk(LinkKey::Child(self.link), &frame)
        } else {
            self.relay.1 += frame.len() as u64;
            self.io.inbound.lock().unwrap().frame(&frame)
        };
        if let Err(e) = r {
            self.broken.get_or_insert(e);
        }
    }

    fn on_wake(&mut self, _: &mut LinkCore) {}

    fn publish(&mut self, core: &LinkCore) {
        self.measure_relay();
        let mut f = core.figures().clone();
        f.streams_received = self.io.inbound.lock().unwrap().len() as u32;
        if let Some(why) = self.broken.take() {
            self.with(|c| {
                c.kick
                    .send_replace(Some(format!("a broken relayed frame: {why}")))
            });
        }
        self.with(|c| c.figures = f);
    }
}

/// How deep a reported tree may go, and how many nodes it may hold: a child cannot make its
/// parent keep an unbounded tree.
const MAX_DEPTH: usize = 16;
const MAX_NODES: usize = 4096;

fn bounded(mut nodes: Vec<TreeNode>, depth: usize) -> Vec<TreeNode> {
    if depth >= MAX_DEPTH {
        return Vec::new();
    }
    nodes.truncate(MAX_NODES);
    for n in &mut nodes {
        cut(&mut n.name, 63);
        cut(&mut n.level, 40);
        n.nodes = bounded(std::mem::take(&mut n.nodes), depth + 1);
    }
    nodes
}

/// Shortens `s` to at most `max` characters (never inside one).
fn cut(s: &mut String, max: usize) {
    if let Some((i, _)) = s.char_indices().nth(max) {
        s.truncate(i);
    }
}

/// Serves one child's link until it ends.
pub async fn serve<L: LinkIo>(
    fed: Arc<Federation>,
    node: NodeRow,
    mut io: L,
    address: Option<String>,
) {
    let link = fed.next_link.fetch_add(1, Ordering::Relaxed);
    let (kick, mut kick_rx) = watch::channel(None);
    let now_ms = fed.now_ms();
    let io_of_link = ChildIo::default();
    let old = fed.children.lock().unwrap().insert(
        node.id,
        ChildLink {
            link,
            since_ms: now_ms,
            address: address.clone(),
            version: None,
            figures: Default::default(),
            tree: Vec::new(),
            kick,
            io: io_of_link.clone(),
        },
    );
    if let Some(old) = old {
        old.kick
            .send_replace(Some("replaced by a new link from the same node".into()));
    }
    if let Err(e) = store::set_link(&fed.db, node.id, true, address.as_deref(), now_ms).await {
        tracing::warn!(node = %node.name, error = %e, "cannot record the link going up");
    }
    tracing::info!(node = %node.name, address = ?address, "child node linked");
    fed.tree_changed.notify_one();

    let mut core = LinkCore::new(tokio::time::Instant::now().into_std());
    core.send(&Msg::Welcome {
        proto: PROTO,
        version: env!("CARGO_PKG_VERSION").into(),
        name: node.name.clone(),
        level: node.level.clone(),
    });
    let mut side = Child {
        fed: &fed,
        id: node.id,
        name: node.name.clone(),
        link,
        io: io_of_link.clone(),
        broken: None,
        relay: (std::time::Instant::now(), 0, 0),
    };
    fed.child_linked(link, node.name.clone(), io_of_link.out.clone());
    let never = Notify::new();
    let end = link::drive(
        &mut io,
        &mut core,
        &mut side,
        &mut kick_rx,
        &never,
        &io_of_link.out,
    )
    .await;
    fed.link_ended(LinkKey::Child(link));
    // The streams it relayed stop; their feeds ask again on the child's next link.
    io_of_link.inbound.lock().unwrap().close_all();
    io_of_link
        .requests
        .lock()
        .unwrap()
        .close_all("the link toward that node dropped");

    let still_ours = {
        let mut m = fed.children.lock().unwrap();
        match m.get(&node.id) {
            Some(c) if c.link == link => {
                m.remove(&node.id);
                true
            }
            _ => false,
        }
    };
    match &end {
        End::Kicked(r) => tracing::info!(node = %node.name, reason = %r, "child link closed"),
        e => tracing::warn!(node = %node.name, reason = %e, "child link lost"),
    }
    if still_ours {
        if let Err(e) = store::set_link(&fed.db, node.id, false, None, fed.now_ms()).await {
            tracing::warn!(node = %node.name, error = %e, "cannot record the link going down");
        }
        fed.tree_changed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, nodes: Vec<TreeNode>) -> TreeNode {
        TreeNode {
            name: name.into(),
            level: "x".into(),
            up: true,
            since_ms: None,
            rtt_ms: None,
            nodes,
        }
    }

    #[test]
    fn a_reported_tree_is_bounded() {
        let mut deep = node("leaf", vec![]);
        for i in 0..40 {
            deep = node(&format!("n{i}"), vec![deep]);
        }
        let b = bounded(
            vec![
                deep,
                node(&"a".repeat(500), vec![]),
                node(&"xã".repeat(40), vec![]),
            ],
            0,
        );
        assert_eq!(b[2].name.chars().count(), 63, "cut between characters");
        let mut depth = 0;
        let mut n = &b[0];
        while let Some(c) = n.nodes.first() {
            depth += 1;
            n = c;
        }
        assert_eq!(depth, MAX_DEPTH - 1);
        assert_eq!(b[1].name.len(), 63);
        let wide = bounded((0..5000).map(|i| node(&i.to_string(), vec![])).collect(), 0);
        assert_eq!(wide.len(), MAX_NODES);
    }
}
