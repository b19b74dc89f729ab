-- Cameras: how to reach them and how long to keep their footage; recorded segments.
-- Keep migrations/sqlite/ in step.

ALTER TABLE cameras ADD COLUMN substream_url TEXT;
ALTER TABLE cameras ADD COLUMN transport TEXT NOT NULL DEFAULT 'tcp';
-- NULL: the global default.
ALTER TABLE cameras ADD COLUMN retention_days BIGINT;
ALTER TABLE cameras ADD COLUMN quota_bytes BIGINT;
-- 'api' (added through the API), 'config' (declared in the config file), 'builtin' (the
-- simulated camera of a configuration that declares none).
ALTER TABLE cameras ADD COLUMN origin TEXT NOT NULL DEFAULT 'api';

-- One fragmented-MP4 file of footage. Rows are written after the data they describe is on
-- disk; 'open' rows are repaired from their files at start (see docs/design/recording.md).
-- camera_id is not a foreign key: footage outlives a camera's removal until retention.
CREATE TABLE segments (
    id BIGSERIAL PRIMARY KEY,
    camera_id BIGINT NOT NULL,
    -- Relative to the data directory.
    path TEXT NOT NULL UNIQUE,
    -- Segments of one run follow each other without a gap.
    run_id BIGINT NOT NULL,
    start_ms BIGINT NOT NULL,
    end_ms BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    video_samples BIGINT NOT NULL DEFAULT 0,
    audio_samples BIGINT NOT NULL DEFAULT 0,
    video_codec TEXT NOT NULL,
    audio_codec TEXT,
    width BIGINT NOT NULL DEFAULT 0,
    height BIGINT NOT NULL DEFAULT 0,
    -- Keyframes: "ms_from_start:byte_offset" pairs, comma-separated.
    keyframes TEXT NOT NULL DEFAULT '',
    open BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX segments_camera_start ON segments (camera_id, start_ms);
CREATE INDEX segments_start ON segments (start_ms);
