//! [`Clip`]: an MP4 file checked and indexed once, ready to be looped by any number of clients.
//!
//! Loading splits every H.264 sample into NAL units and every AAC sample into one access unit,
//! each a [`Bytes`] slice of the one copy of the file, so that streaming never parses, never
//! fails and never copies the clip per client. The loop length is the video track's duration;
//! audio frames that start after it are dropped and the audio edit list (encoder priming) is
//! applied, so both tracks restart together on every loop.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;

use crate::error::{Error, malformed, unsupported};
use crate::mp4::{Codec, Mp4};

/// The committed clip (see `tests/data/README.md`).
static BUILTIN_MP4: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/data/sim-640x360.mp4"
));

/// RTP clock rate of H.264 (RFC 6184).
pub(crate) const VIDEO_CLOCK: u32 = 90_000;

/// Largest AAC access unit the RTP packetizer can describe (13-bit size field).
const MAX_AAC_FRAME: usize = (1 << 13) - 1;

/// A looping clip: one H.264 track and optionally one AAC track, held once in memory.
///
/// Cloning is cheap (a reference count): every client of a [`crate::SimCamera`] shares it.
#[derive(Clone)]
pub struct Clip {
    pub(crate) inner: Arc<ClipInner>,
}

impl std::fmt::Debug for Clip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clip")
            .field("width", &self.inner.video.width)
            .field("height", &self.inner.video.height)
            .field("frames", &self.inner.video.frames.len())
            .field("duration", &self.duration())
            .field("audio", &self.inner.audio.as_ref().map(|a| a.sample_rate))
            .finish()
    }
}

pub(crate) struct ClipInner {
    pub(crate) video: Video,
    pub(crate) audio: Option<Audio>,
}

pub(crate) struct Video {
    pub(crate) timescale: u32,
    /// Loop length, in `timescale` units.
    pub(crate) loop_ticks: u64,
    pub(crate) width: u16,
    pub(crate) height: u16,
    pub(crate) profile_level_id: [u8; 3],
    pub(crate) sps: Bytes,
    pub(crate) pps: Bytes,
    pub(crate) frames: Vec<VideoFrame>,
}

pub(crate) struct VideoFrame {
    /// Decode time in the video timescale, from the start of the loop.
    pub(crate) dts: u64,
    /// Presentation time in the video timescale (>= 0).
    pub(crate) pts: u64,
    pub(crate) is_idr: bool,
    /// NAL units in order, without length prefixes; an IDR frame starts with SPS and PPS.
    pub(crate) nals: Vec<Bytes>,
}

pub(crate) struct Audio {
    pub(crate) timescale: u32,
    /// RTP clock rate: the AAC sampling rate.
    pub(crate) sample_rate: u32,
    pub(crate) channels: u16,
    pub(crate) audio_specific_config: Vec<u8>,
    pub(crate) frames: Vec<AudioFrame>,
}

pub(crate) struct AudioFrame {
    /// Presentation time in the audio timescale, from the start of the loop.
    pub(crate) dts: u64,
    pub(crate) data: Bytes,
}

impl Clip {
    /// The committed 10 s 640x360 clip (H.264 + AAC), embedded in the binary.
    pub fn builtin() -> Clip {
        static BUILTIN: OnceLock<Clip> = OnceLock::new();
        BUILTIN
            .get_or_init(|| {
                Clip::from_bytes(Bytes::from_static(BUILTIN_MP4))
                    .expect("the committed clip loads (tested by clip::tests::builtin_clip)")
            })
            .clone()
    }

    /// Loads a non-fragmented MP4 held in memory (copied once).
    pub fn from_mp4_bytes(data: &[u8]) -> Result<Clip, Error> {
        Clip::from_bytes(Bytes::copy_from_slice(data))
    }

    /// Loads a non-fragmented MP4 without copying it.
    pub fn from_bytes(data: Bytes) -> Result<Clip, Error> {
        let mp4 = Mp4::parse(&data)?;
        let Some(vtrack) = mp4.tracks.iter().find(|t| matches!(t.codec, Codec::Avc(_))) else {
            return unsupported!("no H.264 track");
        };
        let video = load_video(&data, vtrack)?;
        let audio = match mp4
            .tracks
            .iter()
            .find(|t| matches!(&t.codec, Codec::Aac(c) if c.object_type == 2))
        {
            Some(t) => Some(load_audio(&data, t, &video)?),
            None => None,
        };
        Ok(Clip {
            inner: Arc::new(ClipInner { video, audio }),
        })
    }

    /// Length of one loop.
    pub fn duration(&self) -> Duration {
        let v = &self.inner.video;
        Duration::from_nanos(ticks_to(v.loop_ticks, v.timescale, 1_000_000_000))
    }

    /// Picture width in pixels.
    pub fn width(&self) -> u16 {
        self.inner.video.width
    }

    /// Picture height in pixels.
    pub fn height(&self) -> u16 {
        self.inner.video.height
    }

    /// Number of video frames in one loop.
    pub fn video_frames(&self) -> usize {
        self.inner.video.frames.len()
    }

    /// Sampling rate of the audio track, if the clip has one.
    pub fn audio_sample_rate(&self) -> Option<u32> {
        self.inner.audio.as_ref().map(|a| a.sample_rate)
    }

    /// Number of streams offered (1 = video only, 2 = video and audio).
    pub fn stream_count(&self) -> usize {
        1 + usize::from(self.inner.audio.is_some())
    }
}

/// `ticks * to / from`, rounded down, without overflow for any realistic input.
pub(crate) fn ticks_to(ticks: u64, from: u32, to: u32) -> u64 {
    let v = u128::from(ticks) * u128::from(to) / u128::from(from.max(1));
    u64::try_from(v).unwrap_or(u64::MAX)
}

fn slice(data: &Bytes, offset: u64, size: u32) -> Result<Bytes, Error> {
    let start = usize::try_from(offset).unwrap_or(usize::MAX);
    match start.checked_add(size as usize) {
        Some(end) if end <= data.len() => Ok(data.slice(start..end)),
        _ => malformed!("sample at {offset}+{size} is outside the file"),
    }
}

fn load_video(data: &Bytes, t: &crate::mp4::Track) -> Result<Video, Error> {
    let Codec::Avc(avc) = &t.codec else {
        return unsupported!("track {} is not H.264", t.id);
    };
    let (Some(sps), Some(pps)) = (avc.sps.first(), avc.pps.first()) else {
        return unsupported!("H.264 track {} has no SPS/PPS in avcC", t.id);
    };
    let sps = Bytes::copy_from_slice(sps);
    let pps = Bytes::copy_from_slice(pps);
    let len_size = usize::from(avc.nal_length_size);
    let mut frames = Vec::with_capacity(t.samples.len());
    for (i, s) in t.samples.iter().enumerate() {
        let sample = slice(data, s.offset, s.size)?;
        let mut nals = Vec::new();
        let mut pos = 0usize;
        let (mut has_sps, mut is_idr) = (false, false);
        while pos < sample.len() {
            let Some(prefix) = sample.get(pos..pos + len_size) else {
                return malformed!("video sample {i}: truncated NAL length");
            };
            let len = prefix
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            pos += len_size;
            if len == 0 || len > sample.len() - pos {
                return malformed!("video sample {i}: NAL of {len} bytes overruns the sample");
            }
            let nal = sample.slice(pos..pos + len);
            pos += len;
            match nal[0] & 0x1f {
                9 | 12 => continue, // access unit delimiter, filler: not worth sending
                5 => is_idr = true,
                7 => has_sps = true,
                _ => {}
            }
            nals.push(nal);
        }
        if nals.is_empty() {
            return malformed!("video sample {i} holds no NAL unit");
        }
        if is_idr && !has_sps {
            nals.splice(0..0, [sps.clone(), pps.clone()]);
        }
        let pts = s.dts.checked_add_signed(i64::from(s.cts_offset));
        let Some(pts) = pts.and_then(|p| p.checked_sub(t.media_time)) else {
            return unsupported!("video sample {i} is presented before the clip starts");
        };
        frames.push(VideoFrame {
            dts: s.dts,
            pts,
            is_idr,
            nals,
        });
    }
    let Some(first) = frames.first() else {
        return unsupported!("the H.264 track has no sample");
    };
    if !first.is_idr {
        return unsupported!("the H.264 track does not start with an IDR frame");
    }
    let loop_ticks = t
        .samples
        .last()
        .map_or(0, |s| s.dts + u64::from(s.duration));
    if loop_ticks == 0 {
        return unsupported!("the H.264 track has zero duration");
    }
    Ok(Video {
        timescale: t.timescale,
        loop_ticks,
        width: avc.width,
        height: avc.height,
        profile_level_id: avc.profile_level_id,
        sps,
        pps,
        frames,
    })
}

fn load_audio(data: &Bytes, t: &crate::mp4::Track, video: &Video) -> Result<Audio, Error> {
    let Codec::Aac(aac) = &t.codec else {
        return unsupported!("track {} is not AAC", t.id);
    };
    // Loop length in the audio timescale: frames starting at or after it are dropped.
    let loop_ticks = ticks_to(video.loop_ticks, video.timescale, t.timescale);
    let mut frames = Vec::with_capacity(t.samples.len());
    for (i, s) in t.samples.iter().enumerate() {
        // Frames before the edit list's media time are encoder priming: not presented.
        let Some(dts) = s.dts.checked_sub(t.media_time) else {
            continue;
        };
        if dts >= loop_ticks {
            break;
        }
        if s.size == 0 || s.size as usize > MAX_AAC_FRAME {
            return unsupported!("AAC frame {i} has {} bytes", s.size);
        }
        frames.push(AudioFrame {
            dts,
            data: slice(data, s.offset, s.size)?,
        });
    }
    if aac.audio_specific_config.is_empty() {
        return malformed!("empty AudioSpecificConfig");
    }
    Ok(Audio {
        timescale: t.timescale,
        sample_rate: aac.sample_rate,
        channels: aac.channels.max(1),
        audio_specific_config: aac.audio_specific_config.clone(),
        frames,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_clip() {
        let clip = Clip::builtin();
        assert_eq!((clip.width(), clip.height()), (640, 360));
        assert_eq!(clip.duration(), Duration::from_secs(10));
        assert_eq!(clip.video_frames(), 250);
        assert_eq!(clip.audio_sample_rate(), Some(48000));
        assert_eq!(clip.stream_count(), 2);
        let v = &clip.inner.video;
        let idr: Vec<usize> = (0..250).filter(|&i| v.frames[i].is_idr).collect();
        assert_eq!(idr, (0..10).map(|i| i * 25).collect::<Vec<_>>());
        for f in v.frames.iter().filter(|f| f.is_idr) {
            assert_eq!(f.nals[0], v.sps, "SPS first in every IDR frame");
            assert_eq!(f.nals[1], v.pps, "then PPS");
        }
        let a = clip.inner.audio.as_ref().unwrap();
        // 10 s at 48 kHz, 1024 samples per frame: frames start at 0..=468*1024.
        assert_eq!(a.frames.len(), 469);
        assert_eq!(a.frames[0].dts, 0);
        assert_eq!(a.frames[468].dts, 468 * 1024);
    }

    #[test]
    fn clones_share_the_bytes() {
        let a = Clip::builtin();
        let b = Clip::builtin();
        assert!(Arc::ptr_eq(&a.inner, &b.inner));
        let nal = &a.inner.video.frames[3].nals[0];
        assert!(
            BUILTIN_MP4.as_ptr_range().contains(&nal.as_ptr()),
            "no copy"
        );
    }

    #[test]
    fn rejects_audio_only_and_garbage() {
        assert!(Clip::from_mp4_bytes(b"not an mp4").is_err());
    }
}
