//! Which footage to delete, decided with no I/O: by age (per camera, else the default), by
//! each camera's quota, and by the disk's "keep this much free" floor, always oldest first,
//! never a segment still being written.

use std::collections::HashMap;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentInfo {
    pub id: i64,
    pub camera_id: i64,
    pub start_ms: i64,
    pub end_ms: i64,
    pub bytes: u64,
    /// Being written: never deleted.
    pub open: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CameraLimits {
    pub retention_days: Option<u32>,
    pub quota_bytes: Option<u64>,
}

#[derive(Clone, Debug)]
pub struct Policy {
    pub now_ms: i64,
    pub default_retention_days: u32,
    pub cameras: HashMap<i64, CameraLimits>,
    /// Free space on the footage disk now, and the floor to keep.
    pub free_bytes: u64,
    pub keep_free_bytes: u64,
}

/// Why a segment goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    Age,
    Quota,
    DiskFull,
}

/// Segments to delete, oldest first, with the reason for each.
pub fn plan(segments: &[SegmentInfo], p: &Policy) -> Vec<(i64, Reason)> {
    let mut order: Vec<&SegmentInfo> = segments.iter().filter(|s| !s.open).collect();
    order.sort_by_key(|s| (s.start_ms, s.id));
    let mut doomed: HashMap<i64, Reason> = HashMap::new();
    let mut out = Vec::new();
    let mut mark = |s: &SegmentInfo, r: Reason, out: &mut Vec<(i64, Reason)>| {
        if doomed.insert(s.id, r).is_none() {
            out.push((s.id, r));
            true
        } else {
            false
        }
    };

    for s in &order {
        let days = p
            .cameras
            .get(&s.camera_id)
            .and_then(|c| c.retention_days)
            .unwrap_or(p.default_retention_days);
        if s.end_ms < p.now_ms - i64::from(days) * 86_400_000 {
            mark(s, Reason::Age, &mut out);
        }
    }

    let mut used: HashMap<i64, u64> = HashMap::new();
    for s in segments {
        *used.entry(s.camera_id).or_default() += s.bytes;
    }
    for (id, _) in &out {
        if let Some(s) = segments.iter().find(|s| s.id == *id) {
            *used.get_mut(&s.camera_id).expect("counted") -= s.bytes;
        }
    }
    for s in &order {
        let Some(quota) = p.cameras.get(&s.camera_id).and_then(|c| c.quota_bytes) else {
            continue;
        };
        let u = used.get_mut(&s.camera_id).expect("counted");
        if *u > quota && mark(s, Reason::Quota, &mut out) {
            *u -= s.bytes;
        }
    }

    let mut freed: u64 = out
        .iter()
        .filter_map(|(id, _)| segments.iter().find(|s| s.id == *id))
        .map(|s| s.bytes)
        .sum();
    for s in &order {
        if p.free_bytes + freed >= p.keep_free_bytes {
            break;
        }
        if mark(s, Reason::DiskFull, &mut out) {
            freed += s.bytes;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    fn seg(id: i64, cam: i64, day: i64, bytes: u64) -> SegmentInfo {
        SegmentInfo {
            id,
            camera_id: cam,
            start_ms: day * DAY,
            end_ms: day * DAY + 300_000,
            bytes,
            open: false,
        }
    }

    fn policy(now_day: i64) -> Policy {
        Policy {
            now_ms: now_day * DAY,
            default_retention_days: 30,
            cameras: HashMap::new(),
            free_bytes: u64::MAX / 2,
            keep_free_bytes: 0,
        }
    }

    #[test]
    fn age_per_camera_and_default() {
        let segs = vec![
            seg(1, 1, 0, 10),
            seg(2, 1, 5, 10),
            seg(3, 2, 0, 10),
            seg(4, 2, 25, 10),
        ];
        let mut p = policy(31);
        p.cameras.insert(
            2,
            CameraLimits {
                retention_days: Some(7),
                quota_bytes: None,
            },
        );
        let ids: Vec<i64> = plan(&segs, &p).into_iter().map(|(id, _)| id).collect();
        assert_eq!(ids, vec![1, 3]);
        assert!(plan(&segs, &policy(29)).is_empty());
    }

    #[test]
    fn quota_deletes_oldest_of_that_camera_only() {
        let segs: Vec<_> = (0..10).map(|i| seg(i, 1 + i % 2, i, 100)).collect();
        let mut p = policy(10);
        p.cameras.insert(
            1,
            CameraLimits {
                retention_days: None,
                quota_bytes: Some(250),
            },
        );
        let out = plan(&segs, &p);
        // Camera 1 has 500 bytes in segments 0, 2, 4, 6, 8: the three oldest go.
        assert_eq!(
            out,
            vec![(0, Reason::Quota), (2, Reason::Quota), (4, Reason::Quota)]
        );
    }

    #[test]
    fn disk_floor_deletes_oldest_overall_but_never_open_segments() {
        let mut segs: Vec<_> = (0..6).map(|i| seg(i, 1 + i % 3, i, 100)).collect();
        segs[0].open = true;
        let mut p = policy(6);
        p.free_bytes = 50;
        p.keep_free_bytes = 300;
        let out = plan(&segs, &p);
        assert_eq!(
            out,
            vec![
                (1, Reason::DiskFull),
                (2, Reason::DiskFull),
                (3, Reason::DiskFull)
            ]
        );
    }

    #[test]
    fn what_age_frees_counts_towards_the_floor() {
        let segs = vec![seg(1, 1, 0, 500), seg(2, 1, 40, 100), seg(3, 1, 41, 100)];
        let mut p = policy(45);
        p.free_bytes = 0;
        p.keep_free_bytes = 400;
        assert_eq!(plan(&segs, &p), vec![(1, Reason::Age)]);
    }
}
