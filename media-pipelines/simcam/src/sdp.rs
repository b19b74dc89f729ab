//! The SDP session description answered to `DESCRIBE`: one `m=` section per stream of a
//! [`Clip`], with the parameters RFC 6184 (H.264) and RFC 3640 (AAC) ask for.

use std::fmt::Write as _;
use std::net::IpAddr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use crate::clip::{Clip, VIDEO_CLOCK};

/// RTP payload type of the H.264 stream.
pub(crate) const VIDEO_PT: u8 = 96;
/// RTP payload type of the AAC stream.
pub(crate) const AUDIO_PT: u8 = 97;

/// The SDP `a=control` value of stream `i`, relative to the `Content-Base`.
pub(crate) fn track_control(i: usize) -> String {
    format!("trackID={i}")
}

/// Builds the session description of `clip`. `origin` goes in the `o=` line.
pub(crate) fn describe(clip: &Clip, session_id: u64, origin: IpAddr) -> String {
    let v = &clip.inner.video;
    let ip = match origin {
        IpAddr::V4(_) => "IP4",
        IpAddr::V6(_) => "IP6",
    };
    let mut s = String::with_capacity(600);
    // `write!` to a String cannot fail.
    let _ = write!(
        s,
        "v=0\r\n\
         o=- {session_id} 1 IN {ip} {origin}\r\n\
         s=xaso simulated camera\r\n\
         c=IN {ip} {any}\r\n\
         t=0 0\r\n\
         a=tool:xaso-simcam\r\n\
         a=type:broadcast\r\n\
         a=range:npt=0-\r\n\
         a=control:*\r\n",
        any = if ip == "IP4" { "0.0.0.0" } else { "::" },
    );
    let [p, c, l] = v.profile_level_id;
    let _ = write!(
        s,
        "m=video 0 RTP/AVP {VIDEO_PT}\r\n\
         a=rtpmap:{VIDEO_PT} H264/{VIDEO_CLOCK}\r\n\
         a=fmtp:{VIDEO_PT} packetization-mode=1;profile-level-id={p:02X}{c:02X}{l:02X};\
         sprop-parameter-sets={},{}\r\n",
        B64.encode(&v.sps),
        B64.encode(&v.pps),
    );
    if !v.frames.is_empty() {
        let fps = v.frames.len() as f64 * f64::from(v.timescale) / v.loop_ticks as f64;
        let _ = write!(s, "a=framerate:{}\r\n", (fps * 1000.0).round() / 1000.0);
    }
    let _ = write!(
        s,
        "a=x-dimensions:{},{}\r\na=control:{}\r\n",
        v.width,
        v.height,
        track_control(0)
    );
    if let Some(a) = &clip.inner.audio {
        let config: String = a
            .audio_specific_config
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let _ = write!(
            s,
            "m=audio 0 RTP/AVP {AUDIO_PT}\r\n\
             a=rtpmap:{AUDIO_PT} MPEG4-GENERIC/{}/{}\r\n\
             a=fmtp:{AUDIO_PT} streamtype=5;profile-level-id=1;mode=AAC-hbr;\
             sizelength=13;indexlength=3;indexdeltalength=3;config={config}\r\n\
             a=control:{}\r\n",
            a.sample_rate,
            a.channels,
            track_control(1)
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_sdp() {
        let sdp = describe(&Clip::builtin(), 42, "127.0.0.1".parse().unwrap());
        assert!(
            sdp.starts_with("v=0\r\no=- 42 1 IN IP4 127.0.0.1\r\n"),
            "{sdp}"
        );
        assert!(sdp.ends_with("\r\n"));
        assert!(sdp.contains("m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"));
        assert!(
            sdp.contains("packetization-mode=1;profile-level-id=42C01E;"),
            "{sdp}"
        );
        assert!(sdp.contains(";sprop-parameter-sets=Z0LAHt"), "{sdp}");
        assert!(sdp.contains("a=framerate:25\r\n"), "{sdp}");
        assert!(sdp.contains("a=control:trackID=0\r\n"));
        assert!(sdp.contains("m=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/48000/1\r\n"));
        assert!(sdp.contains(
            "mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config=118856e500\r\n"
        ));
        assert!(sdp.contains("a=control:trackID=1\r\n"));
        // The sprop SPS decodes back to the avcC SPS.
        let sprop = sdp.split("sprop-parameter-sets=").nth(1).unwrap();
        let sps_b64 = sprop.split(',').next().unwrap();
        assert_eq!(
            B64.decode(sps_b64).unwrap(),
            Clip::builtin().inner.video.sps.to_vec()
        );
    }
}
