//! One link's I/O loop, the same on both ends: [`LinkIo`] is the seam in front of the
//! WebSocket (axum's on the parent, tokio-tungstenite's on the child, channels in tests),
//! [`drive`] runs a [`LinkCore`] over it until the link ends, handing each message to the
//! [`Side`] that owns it, and writing what other tasks put in the link's [`Outbox`]:
//! control messages first, then relayed media, one frame at a time between reads.

use super::proto::{LinkCore, Msg};
use super::relay::Outbox;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use std::future::Future;
use tokio::sync::{Notify, watch};

/// A WebSocket message that matters to the link.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Text(String),
    Binary(Bytes),
}

/// The transport under a link.
pub trait LinkIo: Send {
    /// The next frame; `None` once the far side closed.
    fn recv(&mut self) -> impl Future<Output = Option<Result<Frame, String>>> + Send;
    fn send(&mut self, f: Frame) -> impl Future<Output = Result<(), String>> + Send;
    fn close(&mut self) -> impl Future<Output = ()> + Send;
}

/// What one end does with the link's messages.
pub trait Side: Send {
    /// A message arrived; `Err(reason)` ends the link.
    fn on_msg(&mut self, core: &mut LinkCore, m: Msg) -> Result<(), String>;
    /// A binary frame (relayed media) arrived.
    fn on_binary(&mut self, _core: &mut LinkCore, _frame: Bytes) {}
    /// The owner asked for attention (e.g. the tree below this node changed).
    fn on_wake(&mut self, core: &mut LinkCore);
    /// After every step: the link's figures, for the API.
    fn publish(&mut self, core: &LinkCore);
}

/// Why a link ended.
#[derive(Debug, Clone, PartialEq)]
pub enum End {
    /// The far side closed it, or said `bye` (with its reason).
    Closed(String),
    /// The transport failed, the far side went silent, or broke the protocol.
    Failed(String),
    /// This end closed it on purpose (the reason was sent in a `bye`).
    Kicked(String),
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::Closed(r) => write!(f, "closed by the far side: {r}"),
            End::Failed(r) => write!(f, "{r}"),
            End::Kicked(r) => write!(f, "closed here: {r}"),
        }
    }
}

fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// Runs the link until it ends. `kick` ends it on purpose: its value becomes the reason;
/// `wake` calls [`Side::on_wake`]; `out` holds what other tasks send on the link.
///
/// Reads come first (a driver that was busy writing reads what arrived before it judges
/// the far side silent), then the ping clock, then the outbox: control messages before
/// media, and one media frame per turn, so a stream filling the link never holds back a
/// ping or a `watch`.
pub async fn drive<L: LinkIo, S: Side>(
    io: &mut L,
    core: &mut LinkCore,
    side: &mut S,
    kick: &mut watch::Receiver<Option<String>>,
    wake: &Notify,
    out: &Outbox,
) -> End {
    loop {
        core.ping_if_due(now());
        for t in out.take_text() {
            core.send_text(t);
        }
        while let Some(t) = core.poll_transmit() {
            if let Err(e) = io.send(Frame::Text(t)).await {
                side.publish(core);
                return End::Failed(format!("cannot send: {e}"));
            }
        }
        side.publish(core);
        let kicked = kick.borrow_and_update().clone();
        if let Some(reason) = kicked {
            core.send(&Msg::Bye {
                reason: reason.clone(),
            });
            while let Some(t) = core.poll_transmit() {
                if io.send(Frame::Text(t)).await.is_err() {
                    break;
                }
            }
            io.close().await;
            return End::Kicked(reason);
        }
        let deadline = tokio::time::Instant::from_std(core.poll_timeout());
        let media_waiting = out.has_media();
        tokio::select! {
            biased;
            r = kick.changed() => if r.is_err() {
                io.close().await;
                return End::Kicked("the link's owner is gone".into());
            },
            f = io.recv() => match f {
                None => return End::Closed("the connection was closed".into()),
                Some(Err(e)) => return End::Failed(format!("cannot receive: {e}")),
                Some(Ok(Frame::Binary(b))) => {
                    core.handle_binary(now(), b.len());
                    side.on_binary(core, b);
                }
                Some(Ok(Frame::Text(t))) => match core.handle_text(now(), &t) {
                    Ok(None) => {}
                    Ok(Some(Msg::Bye { reason })) => return End::Closed(reason),
                    Ok(Some(m)) => {
                        if let Err(reason) = side.on_msg(core, m) {
                            core.send(&Msg::Bye { reason: reason.clone() });
                            if let Some(t) = core.poll_transmit() {
                                let _ = io.send(Frame::Text(t)).await;
                            }
                            io.close().await;
                            return End::Failed(reason);
                        }
                    }
                    Err(e) => return End::Failed(e.to_string()),
                },
            },
            _ = tokio::time::sleep_until(deadline) => {
                if let Err(e) = core.handle_timeout(now()) {
                    return End::Failed(e.to_string());
                }
            }
            _ = wake.notified() => side.on_wake(core),
            _ = out.ready(), if !media_waiting => {}
            _ = std::future::ready(()), if media_waiting => {
                if let Some(f) = out.pop_stream() {
                    let len = match &f {
                        Frame::Text(t) => t.len(),
                        Frame::Binary(b) => b.len(),
                    };
                    if let Err(e) = io.send(f).await {
                        return End::Failed(format!("cannot send: {e}"));
                    }
                    core.sent_stream(now(), len, out.media_waiting());
                }
            }
        }
    }
}

/// The parent's end: axum's WebSocket.
impl LinkIo for axum::extract::ws::WebSocket {
    async fn recv(&mut self) -> Option<Result<Frame, String>> {
        use axum::extract::ws::Message;
        loop {
            return match StreamExt::next(self).await? {
                Ok(Message::Text(t)) => Some(Ok(Frame::Text(t.as_str().to_owned()))),
                Ok(Message::Binary(b)) => Some(Ok(Frame::Binary(b))),
                Ok(Message::Ping(_) | Message::Pong(_)) => continue,
                Ok(Message::Close(_)) => None,
                Err(e) => Some(Err(e.to_string())),
            };
        }
    }

    async fn send(&mut self, f: Frame) -> Result<(), String> {
        use axum::extract::ws::Message;
        let m = match f {
            Frame::Text(t) => Message::Text(t.into()),
            Frame::Binary(b) => Message::Binary(b),
        };
        SinkExt::send(self, m).await.map_err(|e| e.to_string())
    }

    async fn close(&mut self) {
        let _ = SinkExt::close(self).await;
    }
}

/// The child's end: tokio-tungstenite over the pinned TLS connection.
impl<S> LinkIo for tokio_tungstenite::WebSocketStream<S>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
{
    async fn recv(&mut self) -> Option<Result<Frame, String>> {
        use tokio_tungstenite::tungstenite::Message;
        loop {
            return match StreamExt::next(self).await? {
                Ok(Message::Text(t)) => Some(Ok(Frame::Text(t.as_str().to_owned()))),
                Ok(Message::Binary(b)) => Some(Ok(Frame::Binary(b))),
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => continue,
                Ok(Message::Close(_)) => None,
                Err(e) => Some(Err(e.to_string())),
            };
        }
    }

    async fn send(&mut self, f: Frame) -> Result<(), String> {
        use tokio_tungstenite::tungstenite::Message;
        let m = match f {
            Frame::Text(t) => Message::Text(t.into()),
            Frame::Binary(b) => Message::Binary(b),
        };
        SinkExt::send(self, m).await.map_err(|e| e.to_string())
    }

    async fn close(&mut self) {
        let _ = SinkExt::close(self).await;
    }
}

/// An in-memory transport (tests, and a link between two hubs in one process).
pub struct ChannelIo {
    pub rx: tokio::sync::mpsc::Receiver<Frame>,
    pub tx: tokio::sync::mpsc::Sender<Frame>,
}

impl ChannelIo {
    /// Two ends joined to each other.
    pub fn pair() -> (ChannelIo, ChannelIo) {
        let (a_tx, b_rx) = tokio::sync::mpsc::channel(64);
        let (b_tx, a_rx) = tokio::sync::mpsc::channel(64);
        (
            ChannelIo { rx: a_rx, tx: a_tx },
            ChannelIo { rx: b_rx, tx: b_tx },
        )
    }
}

impl LinkIo for ChannelIo {
    async fn recv(&mut self) -> Option<Result<Frame, String>> {
        self.rx.recv().await.map(Ok)
    }

    async fn send(&mut self, f: Frame) -> Result<(), String> {
        self.tx.send(f).await.map_err(|_| "closed".to_owned())
    }

    async fn close(&mut self) {
        self.rx.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::federation::proto::{DEAD_AFTER, LinkFigures};
    use std::time::Duration;

    #[derive(Default)]
    struct Recorder {
        got: Vec<Msg>,
        figures: LinkFigures,
    }

    impl Side for Recorder {
        fn on_msg(&mut self, _: &mut LinkCore, m: Msg) -> Result<(), String> {
            if let Msg::Hello { proto: 0, .. } = m {
                return Err("protocol 0 is not spoken here".into());
            }
            self.got.push(m);
            Ok(())
        }
        fn on_wake(&mut self, core: &mut LinkCore) {
            core.send(&Msg::Tree { nodes: vec![] });
        }
        fn publish(&mut self, core: &LinkCore) {
            self.figures = core.figures().clone();
        }
    }

    /// Both ends of a link over channels, driven beside `meanwhile`: a's kick, b's wake and
    /// a's outbox are the test's.
    struct Ends {
        kick_a: watch::Sender<Option<String>>,
        wake_b: Notify,
        out_a: Outbox,
    }

    async fn both_ends<A: Side, B: Side, F: Future>(
        (mut sa, mut sb): (A, B),
        meanwhile: impl FnOnce(std::sync::Arc<Ends>) -> F,
    ) -> ((End, A), (End, B), F::Output) {
        let (mut a_io, mut b_io) = ChannelIo::pair();
        let (kick_a, mut kick_a_rx) = watch::channel(None);
        let (_kick_b, mut kick_b_rx) = watch::channel(None);
        let ends = std::sync::Arc::new(Ends {
            kick_a,
            wake_b: Notify::new(),
            out_a: Outbox::default(),
        });
        let (wake_a, out_b) = (Notify::new(), Outbox::default());
        let a = async {
            let mut core = LinkCore::new(now());
            let e = drive(
                &mut a_io,
                &mut core,
                &mut sa,
                &mut kick_a_rx,
                &wake_a,
                &ends.out_a,
            );
            e.await
        };
        let b = async {
            let mut core = LinkCore::new(now());
            let e = drive(
                &mut b_io,
                &mut core,
                &mut sb,
                &mut kick_b_rx,
                &ends.wake_b,
                &out_b,
            );
            e.await
        };
        let (ea, eb, m) = tokio::join!(a, b, meanwhile(ends.clone()));
        ((ea, sa), (eb, sb), m)
    }

    /// Both ends of a link over channels, in paused time: a `bye` from a kick reaches the
    /// other end with its reason, and the round trip is measured meanwhile.
    #[tokio::test(start_paused = true)]
    async fn a_kick_says_why_and_both_ends_stop() {
        let sides = (Recorder::default(), Recorder::default());
        let ((ea, sa), (eb, _), ()) = both_ends(sides, |e| async move {
            tokio::time::sleep(Duration::from_secs(10)).await;
            e.wake_b.notify_one();
            tokio::time::sleep(Duration::from_millis(10)).await;
            e.kick_a.send_replace(Some("removed by the admin".into()));
        })
        .await;
        assert_eq!(ea, End::Kicked("removed by the admin".into()));
        assert_eq!(eb, End::Closed("removed by the admin".into()));
        assert_eq!(
            sa.got,
            vec![Msg::Tree { nodes: vec![] }],
            "the wake's message"
        );
        assert!(sa.figures.rtt.is_some(), "10 s of pings measured");
        assert!(sa.figures.bytes_sent > 0 && sa.figures.bytes_received > 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_far_side_ends_the_link_after_the_dead_time() {
        let (mut a_io, _b_io) = ChannelIo::pair();
        let (_kick, mut kick_rx) = watch::channel(None);
        let wake = Notify::new();
        let mut core = LinkCore::new(now());
        let t0 = tokio::time::Instant::now();
        let end = drive(
            &mut a_io,
            &mut core,
            &mut Recorder::default(),
            &mut kick_rx,
            &wake,
            &Outbox::default(),
        )
        .await;
        assert!(
            matches!(end, End::Failed(ref m) if m.contains("nothing heard")),
            "{end:?}"
        );
        assert_eq!(t0.elapsed(), DEAD_AFTER);
    }

    #[tokio::test(start_paused = true)]
    async fn a_message_the_side_refuses_ends_the_link_with_a_bye() {
        let (mut a_io, mut b_io) = ChannelIo::pair();
        let (_kick, mut kick_rx) = watch::channel(None);
        let wake = Notify::new();
        b_io.send(Frame::Text(
            r#"{"t":"hello","proto":0,"version":"0"}"#.into(),
        ))
        .await
        .unwrap();
        let mut core = LinkCore::new(now());
        let end = drive(
            &mut a_io,
            &mut core,
            &mut Recorder::default(),
            &mut kick_rx,
            &wake,
            &Outbox::default(),
        )
        .await;
        assert_eq!(end, End::Failed("protocol 0 is not spoken here".into()));
        let mut saw_bye = false;
        while let Ok(Frame::Text(t)) = b_io.rx.try_recv() {
            saw_bye |= t.contains("bye") && t.contains("protocol 0");
        }
        assert!(saw_bye);
    }

    #[derive(Default)]
    struct Counting {
        binaries: usize,
        bytes: usize,
        figures: LinkFigures,
    }

    impl Side for Counting {
        fn on_msg(&mut self, _: &mut LinkCore, _: Msg) -> Result<(), String> {
            Ok(())
        }
        fn on_binary(&mut self, _: &mut LinkCore, frame: Bytes) {
            self.binaries += 1;
            self.bytes += frame.len();
        }
        fn on_wake(&mut self, _: &mut LinkCore) {}
        fn publish(&mut self, core: &LinkCore) {
            self.figures = core.figures().clone();
        }
    }

    /// A stream that keeps the sender's outbox full for 20 s does not starve either end's
    /// pings: the link stays up (it ends by a kick, not as silent), and the frames arrive.
    #[tokio::test(start_paused = true)]
    async fn a_full_stream_queue_never_holds_back_the_pings() {
        let sides = (Counting::default(), Counting::default());
        let ((ea, sa), (eb, sb), pushed) = both_ends(sides, |e| async move {
            let mut pushed = 0usize;
            let t0 = tokio::time::Instant::now();
            while t0.elapsed() < Duration::from_secs(20) {
                // Refilled faster than anything drains it.
                while e.out_a.push_media(Bytes::from(vec![0u8; 16 * 1024])) {
                    pushed += 1;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            e.kick_a.send_replace(Some("done".into()));
            pushed
        })
        .await;
        assert_eq!(ea, End::Kicked("done".into()));
        assert_eq!(eb, End::Closed("done".into()));
        assert!(sb.binaries > 1000, "{} frames arrived", sb.binaries);
        assert!(pushed >= sb.binaries);
        assert!(sa.figures.rtt.is_some() && sb.figures.rtt.is_some());
        assert!(sa.figures.bytes_sent as usize >= sb.bytes);
        assert_eq!(sa.binaries, 0);
    }
}
