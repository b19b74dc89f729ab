//! Reading the recording index: segments of a camera in a time range, merged into spans
//! with the gaps between them. Pure merging logic is separate from the query so it is
//! tested without a database.

use crate::error::Result;
use sqlx::{AnyPool, Row};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentRow {
    pub id: i64,
    pub path: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub bytes: i64,
    pub video_codec: String,
    pub audio_codec: Option<String>,
    pub width: i64,
    pub height: i64,
    pub open: bool,
}

/// Segments of `camera` overlapping `[start_ms, end_ms)`, oldest first.
pub async fn segments(
    db: &AnyPool,
    camera: i64,
    start_ms: i64,
    end_ms: i64,
) -> Result<Vec<SegmentRow>> {
    let rows = sqlx::query(
        "SELECT id, path, start_ms, end_ms, bytes, video_codec, audio_codec, width, height, open \
         FROM segments WHERE camera_id = $1 AND end_ms > $2 AND start_ms < $3 ORDER BY start_ms, id",
    )
    .bind(camera)
    .bind(start_ms)
    .bind(end_ms)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(SegmentRow {
                id: r.try_get(0)?,
                path: r.try_get(1)?,
                start_ms: r.try_get(2)?,
                end_ms: r.try_get(3)?,
                bytes: r.try_get(4)?,
                video_codec: r.try_get(5)?,
                audio_codec: r.try_get(6)?,
                width: r.try_get(7)?,
                height: r.try_get(8)?,
                open: r.try_get::<i64, _>(9)? != 0,
            })
        })
        .collect()
}

/// A stretch of continuous footage with one codec and size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Span {
    pub start_ms: i64,
    pub end_ms: i64,
    pub video_codec: String,
    pub audio_codec: Option<String>,
    pub width: i64,
    pub height: i64,
    pub segments: usize,
}

/// Footage closer than this to the next is one span (frame spacing and rounding, not loss).
pub const MERGE_GAP_MS: i64 = 100;

/// Merges segments (oldest first) into spans clipped to `[start_ms, end_ms)`; returns the
/// spans and the gaps between `start_ms` and `end_ms` that no footage covers.
pub fn spans(segs: &[SegmentRow], start_ms: i64, end_ms: i64) -> (Vec<Span>, Vec<(i64, i64)>) {
    let mut spans: Vec<Span> = Vec::new();
    for s in segs {
        let (a, b) = (s.start_ms.max(start_ms), s.end_ms.min(end_ms));
        if a >= b {
            continue;
        }
        match spans.last_mut() {
            Some(l)
                if a - l.end_ms <= MERGE_GAP_MS
                    && l.video_codec == s.video_codec
                    && l.audio_codec == s.audio_codec
                    && (l.width, l.height) == (s.width, s.height) =>
            {
                l.end_ms = l.end_ms.max(b);
                l.segments += 1;
            }
            _ => spans.push(Span {
                start_ms: a,
                end_ms: b,
                video_codec: s.video_codec.clone(),
                audio_codec: s.audio_codec.clone(),
                width: s.width,
                height: s.height,
                segments: 1,
            }),
        }
    }
    let mut gaps = Vec::new();
    let mut at = start_ms;
    for s in &spans {
        if s.start_ms - at > MERGE_GAP_MS {
            gaps.push((at, s.start_ms));
        }
        at = at.max(s.end_ms);
    }
    if end_ms - at > MERGE_GAP_MS {
        gaps.push((at, end_ms));
    }
    (spans, gaps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(start: i64, end: i64, w: i64) -> SegmentRow {
        SegmentRow {
            id: start,
            path: String::new(),
            start_ms: start,
            end_ms: end,
            bytes: 1,
            video_codec: "h264".into(),
            audio_codec: None,
            width: w,
            height: 360,
            open: false,
        }
    }

    #[test]
    fn merges_contiguous_segments_and_reports_gaps() {
        let segs = [
            seg(0, 1000, 640),
            seg(1010, 2000, 640),
            seg(5000, 6000, 640),
            seg(6000, 7000, 1280),
        ];
        let (spans, gaps) = spans(&segs, 500, 8000);
        let s: Vec<(i64, i64, usize)> = spans
            .iter()
            .map(|s| (s.start_ms, s.end_ms, s.segments))
            .collect();
        assert_eq!(
            s,
            vec![(500, 2000, 2), (5000, 6000, 1), (6000, 7000, 1)],
            "a new size is a new span"
        );
        assert_eq!(gaps, vec![(2000, 5000), (7000, 8000)]);
        let (spans, gaps) = super::spans(&[], 0, 100_000);
        assert!(spans.is_empty());
        assert_eq!(gaps, vec![(0, 100_000)]);
    }
}
