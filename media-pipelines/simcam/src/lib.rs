//! A built-in simulated IP camera: a real RTSP server that loops a short clip.
//!
//! xaso starts one when it has no camera configured, so a newcomer sees footage at once, and
//! tests use it as a camera. It serves an MP4 clip (by default the committed
//! `tests/data/sim-640x360.mp4`: H.264 + AAC, 10 s) to any number of RTSP clients (ffmpeg,
//! VLC, retina...), over RTP interleaved in TCP or over UDP, each client paced in real time
//! and the clip looped forever with RTP timestamps that keep increasing.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use xaso_simcam::{Clip, SimCamera};
//! let sim = SimCamera::start("127.0.0.1:0".parse().unwrap(), Clip::builtin()).await?;
//! println!("open {}", sim.url("sim"));
//! sim.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Layout: `mp4` reads the file, `clip` indexes it once, `sdp`, `rtsp`, `rtp` and `session`
//! are sans-IO cores (time and randomness passed in), and `server` is the only module that
//! touches sockets.

mod clip;
mod error;
pub mod mp4;
pub mod rtp;
pub mod rtsp;
mod sdp;
mod server;
pub mod session;

pub use clip::Clip;
pub use error::Error;
pub use server::{Config, SimCamera, WRITE_TIMEOUT};
