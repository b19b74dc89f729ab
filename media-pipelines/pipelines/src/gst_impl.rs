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
    let pipeline = gst::parse::launch(&desc)
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
