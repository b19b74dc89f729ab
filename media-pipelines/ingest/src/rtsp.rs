//! The RTSP client: `retina` sessions, set up for the first video track (H.264/H.265) and the
//! first audio track (AAC, G.711) a camera offers, with frames framed for MP4 (4-byte NAL
//! lengths, raw AAC).

use crate::{
    BoxFuture, Frame, IngestError, IngestErrorKind as K, Opener, Source, Stream, TrackInfo,
    Transport, redact,
};
use bytes::Bytes;
use futures::StreamExt;
use retina::client::{
    Credentials, Demuxed, InitialTimestampPolicy, PlayOptions, Session, SessionGroup,
    SessionOptions, SetupOptions, TcpTransportOptions, TeardownPolicy, UdpTransportOptions,
};
use retina::codec::{CodecItem, FrameFormat, ParametersRef};
use std::sync::Arc;
use std::time::Duration;
use xaso_base::Codec;

/// Opens RTSP cameras with `retina`. One per process (it keeps the session group that
/// tears down stale sessions after reconnects).
pub struct RetinaOpener {
    group: Arc<SessionGroup>,
    /// Limit on each RTSP request/response step while opening.
    pub step_timeout: Duration,
}

impl Default for RetinaOpener {
    fn default() -> Self {
        RetinaOpener {
            group: Arc::new(SessionGroup::default()),
            step_timeout: Duration::from_secs(10),
        }
    }
}

fn codec_of(media: &str, encoding: &str) -> Option<Codec> {
    match (media, encoding) {
        ("video", "h264") => Some(Codec::H264),
        ("video", "h265") => Some(Codec::H265),
        ("audio", "mpeg4-generic") => Some(Codec::Aac),
        ("audio", "pcmu") => Some(Codec::Pcmu),
        ("audio", "pcma") => Some(Codec::Pcma),
        _ => None,
    }
}

fn classify(e: &retina::Error, url: &str) -> IngestError {
    let msg = redact(&e.to_string(), url);
    let lower = msg.to_ascii_lowercase();
    let kind = if lower.contains("401")
        || lower.contains("unauthorized")
        || lower.contains("authentication")
    {
        K::Unauthorized
    } else if lower.contains("connection refused")
        || lower.contains("unable to connect")
        || lower.contains("reset by peer")
        || lower.contains("broken pipe")
        || lower.contains("eof")
    {
        K::Network
    } else {
        K::Protocol
    };
    IngestError::new(kind, msg)
}

async fn step<T>(
    d: Duration,
    what: &str,
    f: impl std::future::Future<Output = Result<T, IngestError>>,
) -> Result<T, IngestError> {
    tokio::time::timeout(d, f).await.map_err(|_| {
        IngestError::new(
            K::Timeout,
            format!("{what}: no answer within {} s", d.as_secs()),
        )
    })?
}

impl Opener for RetinaOpener {
    fn open<'a>(&'a self, src: &'a Source) -> BoxFuture<'a, Result<Box<dyn Stream>, IngestError>> {
        Box::pin(async move {
            let mut url = url::Url::parse(&src.url)
                .map_err(|e| IngestError::new(K::InvalidSource, format!("bad camera URL: {e}")))?;
            if !matches!(url.scheme(), "rtsp" | "rtsps") {
                return Err(IngestError::new(
                    K::InvalidSource,
                    "camera URL must be rtsp://",
                ));
            }
            let creds = (!url.username().is_empty()).then(|| Credentials {
                username: percent_decode(url.username()),
                password: percent_decode(url.password().unwrap_or("")),
            });
            let _ = url.set_username("");
            let _ = url.set_password(None);
            let opts = SessionOptions::default()
                .creds(creds)
                .user_agent(format!("xaso/{}", env!("CARGO_PKG_VERSION")))
                .session_group(self.group.clone())
                .teardown(TeardownPolicy::Auto);
            let t = self.step_timeout;
            let mut session = step(t, "DESCRIBE", async {
                Session::describe(url.clone(), opts)
                    .await
                    .map_err(|e| classify(&e, &src.url))
            })
            .await?;
            let mut chosen: Vec<(usize, Codec)> = Vec::new();
            for media in ["video", "audio"] {
                let found = session.streams().iter().enumerate().find_map(|(i, s)| {
                    codec_of(s.media(), s.encoding_name())
                        .filter(|_| s.media() == media)
                        .map(|c| (i, c))
                });
                chosen.extend(found);
            }
            if !chosen.iter().any(|(_, c)| c.is_video()) {
                let offered: Vec<String> = session
                    .streams()
                    .iter()
                    .map(|s| format!("{}/{}", s.media(), s.encoding_name()))
                    .collect();
                return Err(IngestError::new(
                    K::Unsupported,
                    format!(
                        "the camera offers no H.264 or H.265 video (it offers: {})",
                        offered.join(", ")
                    ),
                ));
            }
            for &(i, _) in &chosen {
                let transport = match src.transport {
                    Transport::Tcp => {
                        retina::client::Transport::Tcp(TcpTransportOptions::default())
                    }
                    Transport::Udp => {
                        retina::client::Transport::Udp(UdpTransportOptions::default())
                    }
                };
                let setup = SetupOptions::default()
                    .transport(transport)
                    .frame_format(FrameFormat::MP4);
                step(t, "SETUP", async {
                    session
                        .setup(i, setup)
                        .await
                        .map_err(|e| classify(&e, &src.url))
                })
                .await?;
            }
            let playing = step(t, "PLAY", async {
                session
                    .play(
                        PlayOptions::default()
                            .initial_timestamp(InitialTimestampPolicy::Permissive),
                    )
                    .await
                    .map_err(|e| classify(&e, &src.url))
            })
            .await?;
            let demuxed = playing.demuxed().map_err(|e| classify(&e, &src.url))?;
            let stream: Box<dyn Stream> = Box::new(RetinaStream {
                url: src.url.clone(),
                codecs: chosen.iter().map(|&(_, c)| c).collect(),
                map: chosen.iter().map(|&(i, _)| i).collect(),
                announced: vec![false; chosen.len()],
                demuxed,
            });
            Ok(stream)
        })
    }
}

fn percent_decode(s: &str) -> String {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                b.get(i + 1).and_then(|&c| hex(c)),
                b.get(i + 2).and_then(|&c| hex(c)),
            )
        {
            out.push(hi << 4 | lo);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

struct RetinaStream {
    url: String,
    codecs: Vec<Codec>,
    /// Our track index -> retina stream index.
    map: Vec<usize>,
    announced: Vec<bool>,
    demuxed: Demuxed,
}

impl RetinaStream {
    fn info(&self, track: usize) -> Option<TrackInfo> {
        let s = &self.demuxed.streams()[self.map[track]];
        let codec = self.codecs[track];
        match s.parameters()? {
            ParametersRef::Video(v) => {
                let (w, h) = v.pixel_dimensions();
                Some(TrackInfo {
                    codec,
                    clock_rate: s.clock_rate_hz(),
                    sample_entry: v.mp4_sample_entry().build().ok(),
                    width: u16::try_from(w).unwrap_or(u16::MAX),
                    height: u16::try_from(h).unwrap_or(u16::MAX),
                    channels: 0,
                    rfc6381: Some(v.rfc6381_codec().to_owned()),
                })
            }
            ParametersRef::Audio(a) => Some(TrackInfo {
                codec,
                clock_rate: a.clock_rate(),
                sample_entry: a.mp4_sample_entry().build().ok(),
                width: 0,
                height: 0,
                channels: a.channels().get(),
                rfc6381: a.rfc6381_codec().map(str::to_owned),
            }),
            _ => None,
        }
    }
}

impl Stream for RetinaStream {
    fn codecs(&self) -> &[Codec] {
        &self.codecs
    }

    fn params(&self) -> Vec<Option<TrackInfo>> {
        (0..self.codecs.len()).map(|t| self.info(t)).collect()
    }

    fn next(&mut self) -> BoxFuture<'_, Result<Option<Frame>, IngestError>> {
        Box::pin(async move {
            loop {
                let item = match self.demuxed.next().await {
                    None => return Ok(None),
                    Some(Err(e)) => return Err(classify(&e, &self.url)),
                    Some(Ok(i)) => i,
                };
                let (sid, ts, is_sync, data, new_params, loss) = match item {
                    CodecItem::VideoFrame(f) => {
                        let (sid, ts, key, np, loss) = (
                            f.stream_id(),
                            f.timestamp().elapsed(),
                            f.is_random_access_point(),
                            f.has_new_parameters(),
                            f.loss(),
                        );
                        let data = Bytes::from(f.into_data());
                        let h265 = self
                            .map
                            .iter()
                            .position(|&m| m == sid)
                            .is_some_and(|t| self.codecs[t] == Codec::H265);
                        // retina counts only IDR pictures as random access points; a CRA
                        // (open-GOP encoders, x265's default) is one too.
                        let key = key || (h265 && h265_has_irap(&data));
                        (sid, ts, key, data, np, loss)
                    }
                    CodecItem::AudioFrame(f) => (
                        f.stream_id(),
                        f.timestamp().elapsed(),
                        true,
                        Bytes::copy_from_slice(f.data()),
                        false,
                        f.loss(),
                    ),
                    _ => continue,
                };
                let Some(track) = self.map.iter().position(|&m| m == sid) else {
                    continue;
                };
                let params = if new_params || !self.announced[track] {
                    let info = self.info(track);
                    if info.is_some() {
                        self.announced[track] = true;
                    }
                    info
                } else {
                    None
                };
                return Ok(Some(Frame {
                    track,
                    ts,
                    is_sync,
                    data,
                    params,
                    loss,
                }));
            }
        })
    }
}

/// Whether an H.265 access unit (4-byte length-prefixed NAL units) holds an IRAP picture
/// (BLA, IDR or CRA: NAL unit types 16 to 21).
pub fn h265_has_irap(mut data: &[u8]) -> bool {
    while data.len() >= 5 {
        let len = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize;
        let nal_type = (data[4] >> 1) & 0x3f;
        if (16..=21).contains(&nal_type) {
            return true;
        }
        data = data.get(4 + len..).unwrap_or(&[]);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h265_irap_detection() {
        let nal = |t: u8, len: usize| {
            let mut v = (len as u32).to_be_bytes().to_vec();
            v.push(t << 1);
            v.extend(std::iter::repeat_n(0, len - 1));
            v
        };
        assert!(h265_has_irap(&nal(21, 10)), "CRA");
        assert!(
            h265_has_irap(&[nal(35, 3), nal(19, 10)].concat()),
            "AUD then IDR"
        );
        assert!(!h265_has_irap(&nal(1, 10)), "TRAIL_R");
        assert!(!h265_has_irap(&[0, 0, 0, 200, 2]), "truncated, no panic");
        assert!(!h265_has_irap(&[]));
    }

    #[test]
    fn codecs_by_sdp_names() {
        assert_eq!(codec_of("video", "h264"), Some(Codec::H264));
        assert_eq!(codec_of("audio", "pcma"), Some(Codec::Pcma));
        assert_eq!(codec_of("video", "jpeg"), None);
    }

    #[test]
    fn credentials_are_percent_decoded_and_redacted() {
        assert_eq!(percent_decode("p%40ss%3A1"), "p@ss:1");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%ấ%4"), "%ấ%4");
        assert_eq!(
            redact("failed for rtsp://u:s3cret@h/x", "rtsp://u:s3cret@h/x"),
            "failed for rtsp://h/x"
        );
        assert_eq!(
            redact("bad password s3cret", "rtsp://u:s3cret@h/x"),
            "bad password ***"
        );
    }
}
