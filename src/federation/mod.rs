//! Federation: this node's place in the tree of xaso nodes (central, province, district,
//! commune, as many levels as the country has). A child dials its parent and keeps one
//! link to it, a WebSocket over TLS bound to the parent's key by the join token; the parent
//! never dials a child. [`Federation`] is the hub both ends of every link report to: the
//! children's links ([`downlink`]), the link to the parent ([`uplink`]), and what the API
//! shows of them. See `docs/design/federation.md`.
//!
//! What belongs here: joining, the links, the tree, and what crosses the links
//! ([`cameras`]: the catalogue of the cameras below; [`relay`]: their live streams;
//! [`archive`]: their footage; [`trunks`]: meetings across levels, [`meetings`] their
//! wire). Each later feature that crosses a
//! link (cameras, archive, meetings) sees a remote node through this hub, not a socket.

pub mod archive;
pub mod cameras;
pub mod documents;
pub mod downlink;
pub mod link;
pub mod meetings;
pub mod proto;
pub mod rate;
pub mod relay;
pub mod store;
pub mod token;
pub mod trunks;
pub mod uplink;

use proto::{CameraInfo, LinkFigures, TreeNode};
use sqlx::AnyPool;
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use store::NodeRow;
use tokio::sync::{Notify, watch};
use xaso_base::Clocks;

/// Unsent bytes the kernel keeps for a link at most (`TCP_NOTSENT_LOWAT`, set on both
/// ends): about 22 ms of a 6 Mbit/s link, so that a link too narrow for what is sent
/// shows as a backlog in its outbox (where `federation::rate` sees it and frames are
/// skipped) rather than as delay in the kernel. (16 KiB is also the value commonly set
/// machine-wide for HTTP/2 servers.)
pub const NOTSENT_LOWAT: u32 = 16 * 1024;

/// How often the server compares its children's links with the `nodes` table (a child
/// removed from another process, `xaso node remove`, loses its link within this).
pub const CHECK_EVERY: Duration = Duration::from_secs(2);

/// The state of a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    /// Working.
    Up,
    /// Being dialled (the child's view of its uplink).
    Connecting,
    /// Not working; it is dialled again with backoff.
    Down,
    /// The parent refused this node (its token was revoked, or the key does not match):
    /// dialled again, slowly, until the configuration changes.
    Refused,
}

/// A child's live link, as the hub knows it.
struct ChildLink {
    /// Which connection (a child that dials again replaces its old link).
    link: u64,
    since_ms: i64,
    address: Option<String>,
    version: Option<String>,
    figures: LinkFigures,
    /// The nodes below the child, as it last reported them.
    tree: Vec<TreeNode>,
    kick: watch::Sender<Option<String>>,
    io: ChildIo,
}

/// What the tasks beside a child's link use of it: the outbox (`watch`, `req`, ...), the
/// streams the child relays up on it, and the footage requests open on it.
#[derive(Clone, Default)]
struct ChildIo {
    out: Arc<relay::Outbox>,
    inbound: Arc<Mutex<relay::Inbound>>,
    requests: Arc<Mutex<archive::Requests>>,
}

/// A child, registered and perhaps linked, as the API shows it.
#[derive(Clone, Debug)]
pub struct ChildView {
    pub row: NodeRow,
    pub state: LinkState,
    pub since_ms: Option<i64>,
    pub address: Option<String>,
    pub version: Option<String>,
    pub figures: LinkFigures,
    pub tree: Vec<TreeNode>,
}

/// The link to the parent, as the child sees it.
#[derive(Clone, Debug)]
pub struct UplinkView {
    pub url: String,
    pub state: LinkState,
    pub since_ms: i64,
    /// Why it is not up, in words for the admin.
    pub error: Option<String>,
    /// What the parent calls this node, and at which level (from its `welcome`).
    pub name: Option<String>,
    pub level: Option<String>,
    pub parent_version: Option<String>,
    pub figures: LinkFigures,
}

/// The hub of this node's links.
pub struct Federation {
    db: AnyPool,
    clocks: Arc<dyn Clocks>,
    children: Mutex<HashMap<i64, ChildLink>>,
    /// The registered children, as last read (refreshed every [`CHECK_EVERY`]).
    registered: Mutex<Vec<NodeRow>>,
    uplink: Mutex<Option<UplinkView>>,
    /// Wakes the uplink when the tree below this node changed (to report it up).
    tree_changed: Notify,
    next_link: AtomicU64,
    /// The state of each of this node's own cameras, from the recorder (set at start).
    local_states: OnceLock<LocalStates>,
    /// The cameras of this node and below, as last reported up (or to be).
    cameras: Mutex<Vec<CameraInfo>>,
    /// Camera reports from children, waiting to be written to the catalogue.
    camera_reports: Mutex<HashMap<i64, (String, Vec<CameraInfo>)>>,
    reports_waiting: Notify,
    /// One [`Federation::refresh`] at a time: two interleaved could leave the older of two
    /// camera reports as the last one sent.
    refreshing: tokio::sync::Mutex<()>,
    /// Live view, and the audit log, for relayed streams (set at start; tests without them
    /// relay nothing).
    live: OnceLock<Arc<crate::live::Live>>,
    audit_log: OnceLock<Arc<crate::audit::AuditLog>>,
    /// The feed task of each tap fed from a child (by tap id).
    remote_feeds: Mutex<HashMap<i64, tokio::task::AbortHandle>>,
    /// This node's HTTP application, for its parent's requests for footage (set at start).
    local_http: OnceLock<archive::LocalHttp>,
    /// Meetings across levels: each meeting's trunk on each link, the uplink's outbox
    /// while it is up, and the hub that applies meetings from the parent.
    trunks: Mutex<HashMap<(trunks::LinkKey, i64), trunks::LinkTrunkOf>>,
    next_trunk: AtomicU64,
    uplink_out: Mutex<Option<Arc<relay::Outbox>>>,
    meeting_hub: OnceLock<Arc<dyn trunks::MeetingHub>>,
    /// Per link: what the far side said it can send, and the camera streams coming over
    /// it, from which the meetings' trunks on it get their budgets.
    link_rates: Mutex<HashMap<trunks::LinkKey, trunks::LinkRate>>,
    /// Meetings' documents across nodes: where they are kept, and those being received
    /// (by link, meeting and hash).
    documents_at: OnceLock<documents::DocumentsAt>,
    documents_in: Mutex<HashMap<(trunks::LinkKey, i64, String), documents::Partial>>,
    /// This hub itself, for the tasks its link handlers start.
    me: std::sync::Weak<Federation>,
}

/// A node below this one, as a meeting's invitation names it.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct KnownNode {
    /// Its name path from here (`huyen-a/xa-b`).
    pub path: String,
    pub level: String,
    /// Whether its link to its parent is up.
    pub up: bool,
}

/// Reads the state of this node's own cameras (`camera id → state`).
pub type LocalStates = Box<dyn Fn() -> HashMap<i64, String> + Send + Sync>;

impl Federation {
    pub fn new(db: AnyPool, clocks: Arc<dyn Clocks>) -> Arc<Federation> {
        Arc::new_cyclic(|me| Federation {
            me: me.clone(),
            db,
            clocks,
            children: Mutex::new(HashMap::new()),
            registered: Mutex::new(Vec::new()),
            uplink: Mutex::new(None),
            tree_changed: Notify::new(),
            next_link: AtomicU64::new(1),
            local_states: OnceLock::new(),
            cameras: Mutex::new(Vec::new()),
            camera_reports: Mutex::new(HashMap::new()),
            reports_waiting: Notify::new(),
            refreshing: tokio::sync::Mutex::new(()),
            live: OnceLock::new(),
            audit_log: OnceLock::new(),
            remote_feeds: Mutex::new(HashMap::new()),
            local_http: OnceLock::new(),
            trunks: Mutex::new(HashMap::new()),
            next_trunk: AtomicU64::new(1),
            uplink_out: Mutex::new(None),
            meeting_hub: OnceLock::new(),
            link_rates: Mutex::new(HashMap::new()),
            documents_at: OnceLock::new(),
            documents_in: Mutex::new(HashMap::new()),
        })
    }

    /// This node's own HTTP application, which serves the footage its parent asks for.
    pub fn set_local_http(&self, f: archive::LocalHttp) {
        let _ = self.local_http.set(f);
    }

    /// Live view and the audit log, for the streams relayed across links.
    pub fn set_live(&self, live: Arc<crate::live::Live>, audit_log: Arc<crate::audit::AuditLog>) {
        let _ = self.live.set(live);
        let _ = self.audit_log.set(audit_log);
    }

    /// Writes an audit event (of a stream relayed for the parent); failures are logged.
    async fn audit(&self, ev: crate::audit::Event) {
        if let Some(log) = self.audit_log.get()
            && let Err(e) = log.append(&self.db, self.now_ms(), ev).await
        {
            tracing::error!(error = %e, "cannot audit a relayed stream");
        }
    }

    /// The child `node`'s current link, for the tasks beside it; None while it is down.
    fn child_io(&self, node: i64) -> Option<ChildIo> {
        let m = self.children.lock().unwrap();
        m.get(&node).map(|c| c.io.clone())
    }

    fn now_ms(&self) -> i64 {
        self.clocks.realtime_ms()
    }

    /// Starts what runs for the life of the server: the check of the children's links
    /// against the table, and the uplink when `[parent]` is configured.
    pub async fn start(
        self: &Arc<Self>,
        parent: Option<(String, token::JoinToken)>,
    ) -> crate::error::Result<()> {
        let n = store::mark_all_down(&self.db, self.now_ms()).await?;
        if n > 0 {
            tracing::info!(n, "marked the child links of the last run as down");
        }
        self.refresh().await?;
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(CHECK_EVERY);
            loop {
                tick.tick().await;
                if let Err(e) = me.refresh().await {
                    tracing::warn!(error = %e, "cannot check the child nodes");
                }
            }
        });
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                me.reports_waiting.notified().await;
                if !me.apply_reports().await {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    me.reports_waiting.notify_one();
                }
            }
        });
        if let Some((url, token)) = parent {
            tokio::spawn(uplink::run(self.clone(), url, token));
        }
        Ok(())
    }

    /// Rereads the registered children; ends the link of any that is no longer registered.
    pub async fn refresh(&self) -> crate::error::Result<()> {
        let _one = self.refreshing.lock().await;
        let rows = store::list(&self.db).await?;
        let changed = {
            let mut reg = self.registered.lock().unwrap();
            let changed = reg
                .iter()
                .map(|r| (r.id, &r.name, &r.level))
                .ne(rows.iter().map(|r| (r.id, &r.name, &r.level)));
            *reg = rows;
            changed
        };
        let ids: Vec<i64> = self
            .registered
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect();
        for (id, c) in self.children.lock().unwrap().iter() {
            if !ids.contains(id) {
                c.kick
                    .send_replace(Some("this node was removed by the parent's admin".into()));
            }
        }
        let report = self.camera_report().await?;
        let cameras_changed = {
            let mut c = self.cameras.lock().unwrap();
            let ch = *c != report;
            *c = report;
            ch
        };
        if changed || cameras_changed {
            self.tree_changed.notify_one();
        }
        Ok(())
    }

    /// Where the states of this node's own cameras come from (the recorder's statuses).
    pub fn set_local_states(&self, f: LocalStates) {
        let _ = self.local_states.set(f);
    }

    /// The cameras of this node and below, as reported up.
    pub fn cameras(&self) -> Vec<CameraInfo> {
        self.cameras.lock().unwrap().clone()
    }

    /// Ends a child's link at once (it was removed through the API).
    pub fn kick(&self, id: i64, reason: &str) {
        if let Some(c) = self.children.lock().unwrap().get(&id) {
            c.kick.send_replace(Some(reason.to_owned()));
        }
    }

    /// Every registered child with the state of its link.
    pub fn children(&self) -> Vec<ChildView> {
        let reg = self.registered.lock().unwrap().clone();
        let live = self.children.lock().unwrap();
        reg.into_iter()
            .map(|row| match live.get(&row.id) {
                Some(c) => ChildView {
                    state: LinkState::Up,
                    since_ms: Some(c.since_ms),
                    address: c.address.clone(),
                    version: c.version.clone(),
                    figures: c.figures.clone(),
                    tree: c.tree.clone(),
                    row,
                },
                None => ChildView {
                    state: LinkState::Down,
                    since_ms: row.link_since_ms,
                    address: row.link_address.clone(),
                    version: None,
                    figures: LinkFigures::default(),
                    tree: Vec::new(),
                    row,
                },
            })
            .collect()
    }

    /// The link to the parent, when one is configured.
    pub fn uplink(&self) -> Option<UplinkView> {
        self.uplink.lock().unwrap().clone()
    }

    /// The path of every node below this one (`huyen-a`, `huyen-a/xa-b`, ...): the
    /// registered children and what they report below them.
    pub fn known_paths(&self) -> Vec<String> {
        self.known_nodes().into_iter().map(|n| n.path).collect()
    }

    /// Every node below this one with its level and whether its link is up, by path.
    pub fn known_nodes(&self) -> Vec<KnownNode> {
        fn walk(prefix: &str, nodes: &[TreeNode], out: &mut Vec<KnownNode>) {
            for n in nodes {
                let path = format!("{prefix}/{}", n.name);
                walk(&path, &n.nodes, out);
                out.push(KnownNode {
                    path,
                    level: n.level.clone(),
                    up: n.up,
                });
            }
        }
        let mut out = Vec::new();
        for c in self.children() {
            walk(&c.row.name, &c.tree, &mut out);
            out.push(KnownNode {
                path: c.row.name,
                level: c.row.level,
                up: c.state == LinkState::Up,
            });
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out
    }

    /// The tree below this node, as reported up to the parent.
    pub fn tree(&self) -> Vec<TreeNode> {
        self.children()
            .into_iter()
            .map(|c| TreeNode {
                name: c.row.name,
                level: c.row.level,
                up: c.state == LinkState::Up,
                since_ms: c.since_ms,
                rtt_ms: c.figures.rtt.map(|d| d.as_secs_f64() * 1e3),
                nodes: c.tree,
            })
            .collect()
    }
}
