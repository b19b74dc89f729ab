//! A trunk's link budget: what of the participants behind a trunk this node asks for when
//! the federation link under it is narrower than what its slots would take (a commune's
//! 6 Mbit/s downlink in a meeting of fifty nodes). Audio first, then the pictures of the
//! best ranked (the active speaker, screens, whom someone asked for, the chair, the last
//! to have spoken) at their lowest
//! layer, up to [`LAST_N`] of them, then better layers for them in rank order toward what
//! their tiles would take. What does not fit is not asked for: its participant stays in
//! the meeting (listed, and heard if their audio fitted), and its tile goes to someone whose
//! picture does fit, so a narrow link shows fewer and smaller pictures and never collapses.
//!
//! [`fit`] is the pure rule; [`Core::apply_budgets`] applies it to a room's trunks.

use super::*;

/// A track of a participant behind a trunk, as the budget sees it, in rank order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BudgetFeed {
    pub audio: bool,
    /// The track's layers' bitrates, lowest first (one for audio or without simulcast).
    pub layers: Vec<u64>,
    /// The layer this node's tiles (or the trunks beyond it) would take at best.
    pub ideal: usize,
}

/// What a microphone costs at least, bits per second, whatever it measured (a muted one
/// still sends a little, and each packet has its header on the link).
const MIC_FLOOR_BPS: u64 = 4_000;

/// What a track costs on the link: its bitrate with the framing of each packet (the trunk
/// header, WebSocket and TLS: about 40 bytes, 50 packets a second for audio; about 5 % of
/// video).
pub fn link_cost(audio: bool, bps: u64) -> u64 {
    if audio {
        bps.max(MIC_FLOOR_BPS) + 16_000
    } else {
        bps + bps / 20
    }
}

/// Per feed of `ranked`: the layer index asked for, or `None` (not asked), so that the
/// total [`link_cost`] stays within `budget`, with at most `max_video` videos.
pub fn fit(budget: u64, ranked: &[BudgetFeed], max_video: usize) -> Vec<Option<usize>> {
    let mut pick: Vec<Option<usize>> = vec![None; ranked.len()];
    let mut left = budget;
    let take = |left: &mut u64, cost: u64| {
        let ok = cost <= *left;
        if ok {
            *left -= cost;
        }
        ok
    };
    // 1. Audio, in rank order (a cheap muted microphone after an expensive one may fit).
    for (i, f) in ranked.iter().enumerate().filter(|(_, f)| f.audio) {
        let bps = f.layers.first().copied().unwrap_or(0);
        if take(&mut left, link_cost(true, bps)) {
            pick[i] = Some(0);
        }
    }
    // 2. A picture for the best ranked, each at its lowest layer.
    let mut videos = 0;
    for (i, f) in ranked.iter().enumerate().filter(|(_, f)| !f.audio) {
        if videos == max_video {
            break;
        }
        let Some(&low) = f.layers.first() else {
            continue;
        };
        if take(&mut left, link_cost(false, low)) {
            pick[i] = Some(0);
            videos += 1;
        }
    }
    // 3. Better layers, in rank order, up to what the tiles would take.
    for (i, f) in ranked.iter().enumerate().filter(|(_, f)| !f.audio) {
        let Some(mut at) = pick[i] else { continue };
        let top = f.ideal.min(f.layers.len().saturating_sub(1));
        while at < top {
            let more = link_cost(false, f.layers[at + 1]) - link_cost(false, f.layers[at]);
            if !take(&mut left, more) {
                break;
            }
            at += 1;
        }
        pick[i] = Some(at);
    }
    pick
}

/// What the budget of its trunk allows of a remote publisher's track.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Cap {
    /// Not asked for: the link has no room for it.
    Out,
    /// Up to this layer index.
    Upto(usize),
}

impl Core {
    /// Sets (or, with `None`, lifts) the budget of trunk `trunk`: the bits per second this
    /// node may ask for over it (the link's estimate, less what else crosses it).
    pub fn set_trunk_budget(&mut self, trunk: TrunkId, bps: Option<u64>) {
        let Some(t) = self.trunks.get_mut(&trunk) else {
            return;
        };
        if t.budget == bps {
            return;
        }
        t.budget = bps;
        let room = t.room;
        self.timeout_due = false;
        if self.apply_budgets(room) {
            self.assign_room(room);
        } else {
            self.tell_trunks(room);
        }
    }

    /// Applies each budgeted trunk of `room` to its publishers ([`fit`]); `true` if a
    /// track came in or went out (slots must then be assigned again).
    pub(super) fn apply_budgets(&mut self, room: RoomId) -> bool {
        let Some(r) = self.rooms.get(&room) else {
            return false;
        };
        let (speaker, featured) = (r.speaker, r.featured);
        // Asked for by someone here (a focus), or by a node beyond another trunk.
        let mut asked: HashSet<SessionId> = r.focus.values().copied().collect();
        for t in r.trunks.iter().filter_map(|t| self.trunks.get(t)) {
            asked.extend(
                t.wants
                    .iter()
                    .filter(|w| w.1 == TrackKind::Camera)
                    .map(|w| w.0),
            );
        }
        let mut changed = false;
        for tid in r.trunks.clone() {
            let budget = self.trunks.get(&tid).and_then(|t| t.budget);
            let mut ids: Vec<SessionId> = r
                .remotes
                .iter()
                .copied()
                .filter(|id| self.remote_peers.get(id).is_some_and(|x| x.trunk == tid))
                .collect();
            let Some(budget) = budget else {
                for id in ids {
                    let x = self.remote_peers.get_mut(&id).expect("listed");
                    changed |= x.caps.values().any(|c| *c == Cap::Out);
                    x.caps.clear();
                }
                continue;
            };
            // Rank: the active speaker, then whom someone asked for (here, or beyond another
            // trunk), the featured participant (the chair), the last to have spoken, and by
            // join time.
            let key = |id: &SessionId| {
                (
                    Some(*id) != speaker,
                    !asked.contains(id),
                    Some(*id) != featured,
                )
            };
            ids.sort_by(|a, b| {
                let (x, y) = (&self.remote_peers[a], &self.remote_peers[b]);
                key(a)
                    .cmp(&key(b))
                    .then(y.last_spoke.cmp(&x.last_spoke))
                    .then(x.joined.cmp(&y.joined))
            });
            // Screens before cameras among the videos (their text must stay readable).
            let mut feeds: Vec<(SessionId, TrackKind)> = Vec::new();
            for pass in [TrackKind::Mic, TrackKind::Screen, TrackKind::Camera] {
                for id in &ids {
                    let x = &self.remote_peers[id];
                    if x.tracks.iter().any(|t| t.track == pass) {
                        feeds.push((*id, pass));
                    }
                }
            }
            let ranked: Vec<BudgetFeed> = feeds
                .iter()
                .map(|(id, k)| {
                    let x = &self.remote_peers[id];
                    let t = x.tracks.iter().find(|t| t.track == *k).expect("listed");
                    let feed = Feed {
                        publisher: *id,
                        track: *k,
                    };
                    BudgetFeed {
                        audio: !k.is_video(),
                        layers: t.layers.iter().map(|l| l.1).collect(),
                        ideal: self.trunk_ideal.get(&feed).copied().unwrap_or(0),
                    }
                })
                .collect();
            let pick = fit(budget, &ranked, LAST_N);
            for ((id, k), p) in feeds.into_iter().zip(pick) {
                let cap = p.map_or(Cap::Out, Cap::Upto);
                let x = self.remote_peers.get_mut(&id).expect("listed");
                let before = x.caps.insert(k, cap);
                changed |= (before == Some(Cap::Out)) != (cap == Cap::Out);
            }
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audio(bps: u64) -> BudgetFeed {
        BudgetFeed {
            audio: true,
            layers: vec![bps],
            ideal: 0,
        }
    }

    fn video(layers: &[u64], ideal: usize) -> BudgetFeed {
        BudgetFeed {
            audio: false,
            layers: layers.to_vec(),
            ideal,
        }
    }

    const SIMULCAST: [u64; 3] = [150_000, 500_000, 1_500_000];

    #[test]
    fn everything_fits_a_wide_link() {
        let ranked = [audio(40_000), video(&SIMULCAST, 2), video(&SIMULCAST, 1)];
        assert_eq!(
            fit(100_000_000, &ranked, LAST_N),
            vec![Some(0), Some(2), Some(1)]
        );
    }

    #[test]
    fn audio_goes_first_then_a_small_picture_for_each_then_better_ones_in_rank_order() {
        // 6 Mbit/s at 85 %: ten speakers' audio, then ten videos of 150 kbit/s at least.
        let mut ranked: Vec<BudgetFeed> = (0..10).map(|_| audio(40_000)).collect();
        ranked.extend((0..10).map(|_| video(&SIMULCAST, 2)));
        let pick = fit(5_100_000, &ranked, LAST_N);
        assert!(pick[..10].iter().all(|p| *p == Some(0)), "{pick:?}");
        // Nine pictures at most (last N), the tenth not asked for.
        assert!(pick[10..19].iter().all(|p| p.is_some()), "{pick:?}");
        assert_eq!(pick[19], None);
        // The best ranked got the better layers.
        assert_eq!(pick[10], Some(2));
        assert!(pick[18] <= pick[11], "{pick:?}");
        let cost: u64 = ranked
            .iter()
            .zip(&pick)
            .filter_map(|(f, p)| p.map(|i| link_cost(f.audio, f.layers[i])))
            .sum();
        assert!(cost <= 5_100_000, "{cost}");
    }

    #[test]
    fn a_link_too_narrow_for_pictures_still_carries_the_voices() {
        let ranked = [audio(40_000), audio(40_000), video(&SIMULCAST, 2)];
        assert_eq!(fit(150_000, &ranked, LAST_N), vec![Some(0), Some(0), None]);
        // Narrower still: the best ranked voice first; a cheap muted one after it fits.
        let ranked = [audio(64_000), audio(64_000), audio(0)];
        assert_eq!(fit(110_000, &ranked, LAST_N), vec![Some(0), None, Some(0)]);
    }

    #[test]
    fn no_layer_above_what_the_tiles_take() {
        let ranked = [video(&SIMULCAST, 0), video(&SIMULCAST, 1)];
        assert_eq!(fit(100_000_000, &ranked, LAST_N), vec![Some(0), Some(1)]);
    }
}
