//! Cameras across levels, the catalogue: what this node reports up (its own cameras and
//! those it learnt from below, each with its state) and how a child's report becomes rows
//! of this node's catalogue (`origin = 'remote'`), so that ids, grants and audit work for
//! them as for local cameras. Live view and footage of remote cameras cross the link later.

use super::Federation;
use super::proto::CameraInfo;
use super::store::validate_name;
use crate::error::Result;
use crate::store::{self, remote_name_key};
use sqlx::{AnyPool, Row};
use std::collections::{HashMap, HashSet};

/// The most cameras a child may report (a province's tree of communes stays far below).
pub const MAX_CAMERAS: usize = 20_000;

/// A camera's state when the link toward its node is down.
pub const OFFLINE: &str = "offline";

/// Whether a reported camera can be kept: a name as local names are (so its key is sound)
/// and a node path of node names.
fn acceptable(c: &CameraInfo) -> bool {
    store::validate_camera_name(&c.name).is_ok()
        && (c.node.is_empty() || c.node.split('/').all(|s| validate_name(s).is_ok()))
        && c.state.as_ref().is_none_or(|s| s.len() <= 40)
}

/// Makes the catalogue's rows of child `node_id` (called `child`) what it reported: new
/// cameras added, changed ones updated, missing ones removed (with their grants). Returns
/// whether anything changed.
pub async fn sync_remote(
    db: &AnyPool,
    node_id: i64,
    child: &str,
    cams: &[CameraInfo],
    now_ms: i64,
) -> Result<bool> {
    type Row4 = (String, Option<String>, i64, Option<String>);
    let mut tx = db.begin().await?;
    let existing: HashMap<i64, (i64, Row4)> = sqlx::query(
        "SELECT id, remote_id, name, node_path, record, remote_state FROM cameras WHERE node_id = $1",
    )
    .bind(node_id)
    .fetch_all(&mut *tx)
    .await?
    .iter()
    .map(|r| {
        Ok((
            r.try_get::<i64, _>(1)?,
            (
                r.try_get::<i64, _>(0)?,
                (r.try_get(2)?, r.try_get(3)?, r.try_get(4)?, r.try_get(5)?),
            ),
        ))
    })
    .collect::<std::result::Result<_, sqlx::Error>>()?;
    let mut seen = HashSet::new();
    let mut changed = false;
    for c in cams.iter().take(MAX_CAMERAS) {
        if !acceptable(c) || !seen.insert(c.id) {
            tracing::warn!(node = child, camera = ?c, "a reported camera was left out");
            continue;
        }
        let path = if c.node.is_empty() {
            child.to_owned()
        } else {
            format!("{child}/{}", c.node)
        };
        let want: Row4 = (
            remote_name_key(&path, &c.name),
            Some(path.clone()),
            i64::from(c.record),
            c.state.clone(),
        );
        match existing.get(&c.id) {
            Some((_, have)) if *have == want => {}
            Some((id, _)) => {
                sqlx::query(
                    "UPDATE cameras SET name = $1, node_path = $2, record = $3, remote_state = $4 WHERE id = $5",
                )
                .bind(&want.0)
                .bind(&path)
                .bind(want.2)
                .bind(want.3.clone())
                .bind(id)
                .execute(&mut *tx)
                .await?;
                changed = true;
            }
            None => {
                sqlx::query(
                    "INSERT INTO cameras (name, url, record, created_ms, transport, origin, node_id, remote_id, node_path, remote_state) \
                     VALUES ($1, '', $2, $3, 'tcp', 'remote', $4, $5, $6, $7)",
                )
                .bind(&want.0)
                .bind(want.2)
                .bind(now_ms)
                .bind(node_id)
                .bind(c.id)
                .bind(&path)
                .bind(want.3.clone())
                .execute(&mut *tx)
                .await?;
                changed = true;
            }
        }
    }
    for (remote_id, (id, _)) in &existing {
        if !seen.contains(remote_id) {
            sqlx::query("DELETE FROM cameras WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            changed = true;
        }
    }
    tx.commit().await?;
    Ok(changed)
}

impl Federation {
    /// Whether the link to child `node_id` is up now.
    pub fn child_up(&self, node_id: i64) -> bool {
        self.children.lock().unwrap().contains_key(&node_id)
    }

    /// The state to show of a remote camera: as its node reported it, or [`OFFLINE`] while
    /// the link toward it is down.
    pub fn remote_state(&self, r: &store::RemoteRef) -> String {
        if self.child_up(r.node_id) {
            r.state.clone().unwrap_or_else(|| "unknown".into())
        } else {
            OFFLINE.into()
        }
    }

    /// Every camera of this node and below, as reported up.
    pub(super) async fn camera_report(&self) -> Result<Vec<CameraInfo>> {
        let states = self.local_states.get().map(|f| f()).unwrap_or_default();
        Ok(store::list_cameras(&self.db, None)
            .await?
            .into_iter()
            .map(|c| {
                let (node, state) = match &c.remote {
                    Some(r) => (r.path.clone(), self.remote_state(r)),
                    None => (
                        String::new(),
                        states.get(&c.id).cloned().unwrap_or_else(|| {
                            if c.record { "connecting" } else { "stopped" }.into()
                        }),
                    ),
                };
                CameraInfo {
                    id: c.id,
                    name: c.name,
                    node,
                    record: c.record,
                    state: Some(state),
                }
            })
            .collect())
    }

    /// Applies the camera reports that arrived from children (their links' receivers only
    /// queue them: the database is written here). A report that could not be written (the
    /// database busy: SQLite refuses a read transaction's upgrade when another connection
    /// wrote meanwhile) is queued again, unless a newer one came; returns false then, and
    /// the caller tries again shortly.
    pub(super) async fn apply_reports(&self) -> bool {
        let pending: Vec<(i64, (String, Vec<CameraInfo>))> =
            self.camera_reports.lock().unwrap().drain().collect();
        let mut all = true;
        for (node_id, (child, cams)) in pending {
            match sync_remote(&self.db, node_id, &child, &cams, self.now_ms()).await {
                Ok(true) => {
                    tracing::info!(node = %child, cameras = cams.len(), "cameras of a child node updated")
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(node = %child, error = %e, "cannot apply a child node's cameras yet; trying again");
                    self.camera_reports
                        .lock()
                        .unwrap()
                        .entry(node_id)
                        .or_insert((child, cams));
                    all = false;
                }
            }
        }
        if let Err(e) = self.refresh().await {
            tracing::warn!(error = %e, "cannot check the child nodes");
        }
        all
    }

    /// A child reported its cameras (from its link's receiver).
    pub(super) fn queue_report(&self, node_id: i64, child: &str, cams: Vec<CameraInfo>) {
        self.camera_reports
            .lock()
            .unwrap()
            .insert(node_id, (child.to_owned(), cams));
        self.reports_waiting.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;

    fn cam(id: i64, name: &str, node: &str) -> CameraInfo {
        CameraInfo {
            id,
            name: name.into(),
            node: node.into(),
            record: true,
            state: Some("streaming".into()),
        }
    }

    #[tokio::test]
    async fn a_childs_report_becomes_rows_that_follow_it_and_go_with_the_child() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::db::open_in(dir.path()).await;
        let a = super::super::store::create(&db, "huyen-a", "district", "h1", 1)
            .await
            .unwrap();
        let b = super::super::store::create(&db, "huyen-b", "district", "h2", 1)
            .await
            .unwrap();
        // A local camera, and two districts with cameras of the same name: no collision.
        let local = store::CameraSettings {
            name: "Cổng chính".into(),
            url: "rtsp://192.0.2.9/x".into(),
            record: true,
            substream_url: None,
            transport: "tcp".into(),
            retention_days: None,
            quota_bytes: None,
        };
        store::create_camera(&db, &local, "api", 1).await.unwrap();
        let report = vec![cam(7, "Cổng chính", ""), cam(3, "Chợ", "xa-b")];
        assert!(sync_remote(&db, a.id, "huyen-a", &report, 2).await.unwrap());
        assert!(!sync_remote(&db, a.id, "huyen-a", &report, 3).await.unwrap());
        sync_remote(&db, b.id, "huyen-b", &[cam(7, "Cổng chính", "")], 2)
            .await
            .unwrap();
        let all = store::list_cameras(&db, None).await.unwrap();
        let shown: Vec<(String, Option<String>)> = all
            .iter()
            .map(|c| (c.name.clone(), c.remote.as_ref().map(|r| r.path.clone())))
            .collect();
        assert_eq!(
            shown,
            [
                ("Cổng chính".to_owned(), None),
                ("Cổng chính".to_owned(), Some("huyen-a".to_owned())),
                ("Chợ".to_owned(), Some("huyen-a/xa-b".to_owned())),
                ("Cổng chính".to_owned(), Some("huyen-b".to_owned())),
            ]
        );
        assert_eq!(store::local_cameras(&db).await.unwrap().len(), 1);
        let gate = all[1].clone();
        assert_eq!(gate.origin, "remote");
        assert_eq!(gate.remote.as_ref().unwrap().remote_id, 7);
        let e = store::local_camera(&db, gate.id).await.unwrap_err();
        assert!(e.message().contains("huyen-a"), "{e}");

        // A grant on it; a rename keeps the row (and the grant); a camera gone is removed.
        let u = store::create_user(&db, "canbo", Role::Operator, "x", 1)
            .await
            .unwrap();
        store::set_grants(&db, u.id, &[gate.id]).await.unwrap();
        let renamed = vec![cam(7, "Cổng UBND", "")];
        assert!(
            sync_remote(&db, a.id, "huyen-a", &renamed, 4)
                .await
                .unwrap()
        );
        let c = store::camera(&db, gate.id).await.unwrap();
        assert_eq!(c.name, "Cổng UBND");
        assert_eq!(
            store::granted_camera_ids(&db, u.id).await.unwrap(),
            [gate.id]
        );
        assert_eq!(store::list_cameras(&db, None).await.unwrap().len(), 3);

        // What cannot be kept is left out: a name with a control character, a bad path.
        let bad = vec![
            cam(8, "a\u{1}b", ""),
            cam(9, "x", "Xa B"),
            cam(7, "Cổng UBND", ""),
        ];
        sync_remote(&db, a.id, "huyen-a", &bad, 5).await.unwrap();
        assert_eq!(store::list_cameras(&db, None).await.unwrap().len(), 3);

        // The child removed: its cameras and their grants go with it.
        super::super::store::delete(&db, a.id).await.unwrap();
        assert_eq!(store::list_cameras(&db, None).await.unwrap().len(), 2);
        assert!(
            store::granted_camera_ids(&db, u.id)
                .await
                .unwrap()
                .is_empty()
        );
    }
}
