//! Runs the simulated camera until Ctrl-C: `cargo run -p xaso-simcam --example simcam [ADDR]`
//! (default `127.0.0.1:8554`), then open `rtsp://127.0.0.1:8554/sim` in ffplay or VLC.

use xaso_simcam::{Clip, SimCamera};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8554".to_owned());
    let addr = addr
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let sim = SimCamera::start(addr, Clip::builtin()).await?;
    tracing::info!(url = %sim.default_url(), "serving; Ctrl-C to stop");
    tokio::signal::ctrl_c().await?;
    sim.shutdown().await;
    Ok(())
}
