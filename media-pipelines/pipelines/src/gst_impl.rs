//! The GStreamer implementations.

use crate::PipelineError;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

fn init() -> Result<(), PipelineError> {
    static INIT: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    INIT.get_or_init(|| gst::init().map_err(|e| e.to_string()))
        .clone()
        .map_err(PipelineError::Setup)
}

/// A pipeline from its description, with its `appsrc` named `src` and `appsink` named `sink`.
fn launch(desc: &str) -> Result<(gst::Pipeline, gst_app::AppSrc, gst_app::AppSink), PipelineError> {
    let pipeline = gst::parse::launch(desc)
        .map_err(|e| PipelineError::Setup(e.to_string()))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| PipelineError::Setup("not a pipeline".into()))?;
    let src = pipeline
        .by_name("src")
        .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
        .ok_or_else(|| PipelineError::Setup("no appsrc".into()))?;
    let sink = pipeline
        .by_name("sink")
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .ok_or_else(|| PipelineError::Setup("no appsink".into()))?;
    Ok((pipeline, src, sink))
}

pub fn last_frame_jpeg(mp4: &[u8], width: Option<u32>) -> Result<Vec<u8>, PipelineError> {
    init()?;
    let scale = match width {
        Some(w) => format!(
            "videoscale ! video/x-raw,width={},pixel-aspect-ratio=1/1 ! ",
            w.clamp(16, 3840)
        ),
        None => String::new(),
    };
    let desc = format!(
        "appsrc name=src caps=video/quicktime format=bytes ! qtdemux ! decodebin ! videoconvert ! {scale}\
         jpegenc quality=85 ! appsink name=sink sync=false max-buffers=1 drop=true"
    );
    let (pipeline, src, sink) = launch(&desc)?;
    let stop = |p: &gst::Pipeline| {
        let _ = p.set_state(gst::State::Null);
    };
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| PipelineError::Setup(e.to_string()))?;
    let _ = src.push_buffer(gst::Buffer::from_slice(mp4.to_vec()));
    let _ = src.end_of_stream();
    // Keep the last JPEG until end of stream, or an error.
    let mut last = None;
    let bus = pipeline
        .bus()
        .ok_or_else(|| PipelineError::Setup("no bus".into()))?;
    loop {
        if let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_mseconds(50)) {
            if let Some(buf) = sample.buffer()
                && let Ok(map) = buf.map_readable()
            {
                last = Some(map.as_slice().to_vec());
            }
            continue;
        }
        if sink.is_eos() {
            break;
        }
        if let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error])
            && let gst::MessageView::Error(err) = msg.view()
        {
            stop(&pipeline);
            return Err(PipelineError::Decode(err.error().to_string()));
        }
    }
    stop(&pipeline);
    last.ok_or_else(|| PipelineError::Decode("no video frame".into()))
}

/// See [`crate::AacToOpus`].
pub struct AacToOpus {
    pipeline: gst::Pipeline,
    src: gst_app::AppSrc,
}

impl AacToOpus {
    pub fn new(
        asc: &[u8],
        sample_rate: u32,
        channels: u16,
        out: crate::OpusSink,
    ) -> Result<Self, PipelineError> {
        init()?;
        let hex: String = asc.iter().map(|b| format!("{b:02x}")).collect();
        // A leaky queue: a transcoder that falls behind drops input rather than the
        // camera's ingest thread waiting for it.
        let desc = format!(
            "appsrc name=src is-live=true format=time \
             caps=audio/mpeg,mpegversion=4,stream-format=raw,rate={sample_rate},channels={channels},codec_data=(buffer){hex} ! \
             queue leaky=downstream max-size-buffers=50 ! avdec_aac ! audioconvert ! audioresample ! \
             audio/x-raw,rate=48000 ! opusenc bitrate=48000 frame-size=20 ! \
             appsink name=sink sync=false max-buffers=100 drop=true"
        );
        let (pipeline, src, sink) = launch(&desc)?;
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    if let Some(buf) = sample.buffer()
                        && let Ok(map) = buf.map_readable()
                    {
                        let pts = buf.pts().map_or(0, |t| t.nseconds());
                        let ticks = (u128::from(pts) * 48_000 / 1_000_000_000) as u64;
                        out(map.as_slice().to_vec(), ticks);
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| PipelineError::Setup(e.to_string()))?;
        Ok(AacToOpus { pipeline, src })
    }

    pub fn push(&self, frame: &[u8], pts_ns: u64) {
        let mut b = gst::Buffer::from_slice(frame.to_vec());
        if let Some(b) = b.get_mut() {
            b.set_pts(gst::ClockTime::from_nseconds(pts_ns));
        }
        let _ = self.src.push_buffer(b);
    }
}

impl Drop for AacToOpus {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// See [`crate::H265ToH264`].
pub struct H265ToH264 {
    pipeline: gst::Pipeline,
    src: gst_app::AppSrc,
}

const NS_PER_TICK: u64 = 1_000_000_000 / 90_000;

impl H265ToH264 {
    pub fn new(hvcc: &[u8], out: crate::H264Sink) -> Result<Self, PipelineError> {
        init()?;
        let hex: String = hvcc.iter().map(|b| format!("{b:02x}")).collect();
        let desc = format!(
            "appsrc name=src is-live=true format=time \
             caps=video/x-h265,stream-format=hvc1,alignment=au,codec_data=(buffer){hex} ! \
             queue leaky=downstream max-size-buffers=60 ! h265parse ! avdec_h265 ! videoconvert ! \
             x264enc tune=zerolatency speed-preset=ultrafast key-int-max=50 bitrate=1500 ! \
             video/x-h264,profile=constrained-baseline,stream-format=avc,alignment=au ! \
             appsink name=sink sync=false max-buffers=60 drop=true"
        );
        let (pipeline, src, sink) = launch(&desc)?;
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let (Some(buf), Some(caps)) = (sample.buffer(), sample.caps()) else {
                        return Ok(gst::FlowSuccess::Ok);
                    };
                    let Some(st) = caps.structure(0) else {
                        return Ok(gst::FlowSuccess::Ok);
                    };
                    let avcc = st
                        .get::<gst::Buffer>("codec_data")
                        .ok()
                        .and_then(|b| b.map_readable().ok().map(|m| m.as_slice().to_vec()));
                    let (Some(avcc), Ok(map)) = (avcc, buf.map_readable()) else {
                        return Ok(gst::FlowSuccess::Ok);
                    };
                    let dim = |k: &str| st.get::<i32>(k).ok().and_then(|v| u16::try_from(v).ok());
                    out(crate::H264Frame {
                        data: map.as_slice().to_vec(),
                        ts: buf.pts().map_or(0, |t| t.nseconds() / NS_PER_TICK),
                        keyframe: !buf.flags().contains(gst::BufferFlags::DELTA_UNIT),
                        avcc,
                        width: dim("width").unwrap_or(0),
                        height: dim("height").unwrap_or(0),
                    });
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| PipelineError::Setup(e.to_string()))?;
        Ok(H265ToH264 { pipeline, src })
    }

    pub fn push(&self, au: &[u8], ts: u64, keyframe: bool) {
        let mut b = gst::Buffer::from_slice(au.to_vec());
        if let Some(b) = b.get_mut() {
            b.set_pts(gst::ClockTime::from_nseconds(ts * NS_PER_TICK));
            if !keyframe {
                b.set_flags(gst::BufferFlags::DELTA_UNIT);
            }
        }
        let _ = self.src.push_buffer(b);
    }
}

impl Drop for H265ToH264 {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}
