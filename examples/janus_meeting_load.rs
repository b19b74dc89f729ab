//! Janus videoroom load client, the peer side of `benches/meeting_load.py --janus`: the
//! same participants as `meeting_load` (the same str0m participant, the same media, the
//! same checks), in one room of Janus 1.1.2's videoroom plugin, so that both SFUs forward
//! exactly the same load.
//!
//!     cargo run --release --example janus_meeting_load -- BASE ROOM LOCAL_IP N SECONDS [KBPS]
//!
//! BASE is Janus's HTTP API (`http://127.0.0.2:8088`), ROOM a room number to create,
//! LOCAL_IP the address the participants bind and offer (`benches/janus/README.md`). Per
//! participant, one Janus session with two handles, as Janus's own demo page does:
//! - a publisher joins the room and `publish`es the offer of a send-only participant: a
//!   microphone (Opus-sized packets every 20 ms) and a 25 fps VP8-shaped camera at KBPS;
//! - once every publisher is in, a subscriber joins with `streams` for the next
//!   min(N - 1, 9) participants' feeds (camera and microphone) and every other
//!   participant's microphone, as xaso forwards them ("last N" video, everyone's audio),
//!   and answers Janus's offer with a receive-only participant.
//!
//! Prints what `meeting_load` prints: per participant, then one JSON summary.

#[allow(dead_code)]
#[path = "meeting_load.rs"]
mod meeting_load;

#[allow(dead_code)]
#[path = "common/janus.rs"]
mod janus;

use janus::{Session, sdp_of};
use meeting_load::{JOIN_GAP, Report, WARM_UP, drive_until, summarize};
use serde_json::{Value, json};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use xaso_sfu::participant::{Offer, Participant};

const VIDEOROOM: &str = "janus.plugin.videoroom";
/// How long Janus may take to answer a join or an offer.
const WAIT: Duration = Duration::from_secs(15);

fn data(e: &Value) -> &Value {
    &e["plugindata"]["data"]
}

/// Creates room `room` for `n` publishers: Opus and VP8, transport-wide congestion
/// control and audio levels on, no bitrate cap (as xaso).
async fn create_room(base: &str, room: u64, n: usize) -> Result<(), String> {
    let s = Session::create(base).await?;
    let h = s.attach(VIDEOROOM).await?;
    let r = s
        .message(
            h,
            json!({"request": "create", "room": room, "publishers": n.max(1),
                   "audiocodec": "opus", "videocodec": "vp8", "bitrate": 0,
                   "audiolevel_ext": true, "transport_wide_cc_ext": true,
                   "notify_joining": false}),
            None,
        )
        .await?;
    s.destroy().await;
    match data(&r)["videoroom"].as_str() {
        Some("created") => Ok(()),
        _ => Err(format!("room {room} not created: {r}")),
    }
}

async fn bind(ip: IpAddr) -> Result<(UdpSocket, SocketAddr), String> {
    let sock = UdpSocket::bind(SocketAddr::new(ip, 0))
        .await
        .map_err(|e| e.to_string())?;
    let local = sock.local_addr().map_err(|e| e.to_string())?;
    Ok((sock, local))
}

/// A publisher in the room: its session, its feed id, and the participant (connected by
/// the time its media starts).
struct Publisher {
    session: Session,
    feed: u64,
    /// The mid of its microphone (subscribers ask for that stream alone).
    mic: String,
    p: Participant,
    sock: UdpSocket,
}

async fn publish(
    base: String,
    room: u64,
    ip: IpAddr,
    tag: u8,
    epoch: Instant,
) -> Result<Publisher, String> {
    let session = Session::create(&base).await?;
    let h = session.attach(VIDEOROOM).await?;
    let name = format!("Đại biểu {tag}");
    session
        .message(
            h,
            json!({"request": "join", "ptype": "publisher", "room": room, "display": name}),
            None,
        )
        .await?;
    let joined = session
        .event(h, WAIT, |e| data(e)["videoroom"] == "joined")
        .await?;
    let feed = data(&joined)["id"].as_u64().ok_or("joined without an id")?;
    let (sock, local) = bind(ip).await?;
    let (mut p, offer, _) = Participant::offer_as(Instant::now(), local, tag, Offer::slots(0, 0));
    p.set_epoch(epoch);
    session
        .message(
            h,
            json!({"request": "publish", "audio": true, "video": true}),
            Some(json!({"type": "offer", "sdp": offer})),
        )
        .await?;
    let e = session.event(h, WAIT, |e| sdp_of(e).is_some()).await?;
    p.answer(&sdp_of(&e).unwrap_or_default())?;
    Ok(Publisher {
        session,
        feed,
        mic: p.mic.to_string(),
        p,
        sock,
    })
}

/// A subscriber on `session` to `streams` (Janus's `{"feed": id}` for all of a feed,
/// with `"mid"` for one of its tracks): the receiving participant, answered and started.
async fn subscribe(
    session: Session,
    room: u64,
    streams: Vec<Value>,
    ip: IpAddr,
    tag: u8,
    epoch: Instant,
    count_from: Instant,
) -> Result<(Participant, UdpSocket), String> {
    let h = session.attach(VIDEOROOM).await?;
    let join = json!({"request": "join", "ptype": "subscriber", "room": room, "streams": streams});
    // A feed exists for subscribers once its publisher's WebRTC is up: until then Janus
    // refuses the join ("No such feed"), so it is tried again.
    let deadline = Instant::now() + WAIT;
    let e = loop {
        session.message(h, join.clone(), None).await?;
        match session.event(h, WAIT, |e| sdp_of(e).is_some()).await {
            Ok(e) => break e,
            Err(e) if e.contains("No such feed") && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(e) => return Err(e),
        }
    };
    let (sock, local) = bind(ip).await?;
    let (mut p, answer) =
        Participant::accept_offer(Instant::now(), local, tag, &sdp_of(&e).unwrap_or_default())?;
    p.set_epoch(epoch);
    p.count_from = Some(count_from);
    session
        .message(
            h,
            json!({"request": "start"}),
            Some(json!({"type": "answer", "sdp": answer})),
        )
        .await?;
    Ok((p, sock))
}

async fn run(
    base: &str,
    room: u64,
    ip: IpAddr,
    n: usize,
    secs: u64,
    kbps: u64,
) -> Result<Vec<Result<Report, String>>, String> {
    create_room(base, room, n).await?;
    let epoch = Instant::now();
    let mut joining = Vec::new();
    for i in 0..n {
        let tag = (i % 250) as u8 + 1;
        joining.push(tokio::spawn(publish(
            base.to_string(),
            room,
            ip,
            tag,
            epoch,
        )));
        tokio::time::sleep(JOIN_GAP).await;
    }
    let mut publishers = Vec::new();
    for j in joining {
        publishers.push(j.await.map_err(|e| e.to_string())??);
    }
    // Every publisher is in: media from now to the end, subscribers join meanwhile.
    let start = Instant::now();
    let end = start + Duration::from_secs(secs);
    let feeds: Vec<(u64, String)> = publishers.iter().map(|p| (p.feed, p.mic.clone())).collect();
    let mut tasks = Vec::new();
    for (i, publisher) in publishers.into_iter().enumerate() {
        let Publisher {
            session, p, sock, ..
        } = publisher;
        let keepalive = session.keepalive();
        let sending = tokio::spawn(drive_until(p, sock, end, kbps));
        // As xaso: the next 9 participants' camera and microphone, every other one's
        // microphone.
        let others: Vec<Value> = (1..n)
            .map(|k| {
                let (feed, mic) = &feeds[(i + k) % n];
                if k <= 9 {
                    json!({"feed": feed})
                } else {
                    json!({"feed": feed, "mid": mic})
                }
            })
            .collect();
        let tag = (i % 250) as u8 + 1;
        let receiving = subscribe(
            session.clone(),
            room,
            others,
            ip,
            tag,
            epoch,
            start + WARM_UP,
        );
        tasks.push(tokio::spawn(async move {
            let received = match receiving.await {
                Ok((p, sock)) => Ok(drive_until(p, sock, end, 0).await.0),
                Err(e) => Err(e),
            };
            let (publisher, sent) = sending.await.map_err(|e| e.to_string())?;
            keepalive.abort();
            session.destroy().await;
            let sub = received?;
            let mut r = Report::of(
                &format!("Đại biểu {tag}"),
                &sub,
                end.saturating_duration_since(start + WARM_UP),
                None,
                sent.frames,
                Value::Null,
            );
            r.connected = sub.connected && publisher.connected;
            r.disconnected = sub.disconnected || publisher.disconnected;
            Ok(r)
        }));
        tokio::time::sleep(JOIN_GAP).await;
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap_or_else(|e| Err(e.to_string())));
    }
    Ok(out)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 5 {
        eprintln!("usage: janus_meeting_load BASE ROOM LOCAL_IP N SECONDS [KBPS]");
        std::process::exit(2);
    }
    let base = args[0].trim_end_matches('/').to_string();
    let room: u64 = args[1].parse().expect("ROOM is a number");
    let ip: IpAddr = args[2].parse().expect("LOCAL_IP is an address");
    let n: usize = args[3].parse().expect("N");
    let secs: u64 = args[4].parse().expect("SECONDS");
    let kbps: u64 = args.get(5).map_or(500, |k| k.parse().expect("KBPS"));
    xaso_sfu::init_crypto();
    let reports = match run(&base, room, ip, n, secs, kbps).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    for r in &reports {
        match r {
            Ok(r) => println!(
                "{}: connected={} frames={}",
                r.name,
                r.connected,
                r.video_frames()
            ),
            Err(e) => println!("failed: {e}"),
        }
    }
    println!("{}", summarize(&reports));
}
