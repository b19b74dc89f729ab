//! Runs the simulated camera until Ctrl-C or SIGTERM:
//! `cargo run -p xaso-simcam --example simcam [ADDR] [CLIP.mp4]` (default `127.0.0.1:8554`
//! and the built-in clip), then open `rtsp://127.0.0.1:8554/sim` in ffplay. The benchmarks
//! use it, with a 4 Mbit/s clip, as a cheap source for many cameras.

use xaso_simcam::{Clip, SimCamera};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8554".to_owned());
    let addr = addr
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let clip = match std::env::args().nth(2) {
        Some(path) => Clip::from_mp4_bytes(&std::fs::read(&path)?)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?,
        None => Clip::builtin(),
    };
    let sim = SimCamera::start(addr, clip).await?;
    tracing::info!(url = %sim.default_url(), "serving; Ctrl-C to stop");
    println!("READY {}", sim.default_url());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    sim.shutdown().await;
    Ok(())
}
