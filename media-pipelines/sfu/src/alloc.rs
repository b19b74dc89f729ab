//! Simulcast layer choice for one subscriber: which layer of each publisher's video its
//! slots should carry, from the size each tile is shown at and the bandwidth estimated
//! toward the subscriber. Pure: numbers in, layer indexes out.
//!
//! The rules, in order:
//! 1. Each slot's ideal layer follows its tile: up to 200 px high the lowest, up to 400 px
//!    the middle one, larger (or unknown) the highest; a screen share always the highest
//!    (its text must stay readable).
//! 2. While the sum of the chosen layers' bitrates exceeds the budget, the slot whose
//!    layer costs most steps down one layer, camera tiles before screen shares; a slot at
//!    its lowest layer stays there (a picture, even small, beats a black tile).

/// One video slot's publisher: its layers' bitrates, lowest first (one entry without
/// simulcast), and how the slot is shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Want {
    pub layers: Vec<u64>,
    /// The tile's height in CSS pixels, if the page said.
    pub tile_height: Option<u32>,
    pub screen: bool,
}

/// The layer index for each slot of `wants`, within `budget_bps` when given.
pub fn allocate(budget_bps: Option<u64>, wants: &[Want]) -> Vec<usize> {
    let mut pick: Vec<usize> = wants
        .iter()
        .map(|w| {
            let top = w.layers.len().saturating_sub(1);
            match (w.screen, w.tile_height) {
                (true, _) | (false, None) => top,
                (false, Some(h)) if h <= 200 => 0,
                (false, Some(h)) if h <= 400 => top.min(1),
                _ => top,
            }
        })
        .collect();
    let Some(budget) = budget_bps else {
        return pick;
    };
    while cost(wants, &pick) > budget {
        let down = (0..wants.len())
            .filter(|i| pick[*i] > 0)
            .max_by_key(|i| (!wants[*i].screen, wants[*i].layers[pick[*i]]));
        match down {
            Some(i) => pick[i] -= 1,
            None => break,
        }
    }
    pick
}

/// The bitrate of the layers `pick` chooses for `wants`.
pub fn cost(wants: &[Want], pick: &[usize]) -> u64 {
    wants
        .iter()
        .zip(pick)
        .map(|(w, i)| w.layers.get(*i).copied().unwrap_or(0))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cam(h: Option<u32>) -> Want {
        Want {
            layers: vec![150_000, 500_000, 1_500_000],
            tile_height: h,
            screen: false,
        }
    }

    #[test]
    fn tiles_choose_layers_by_size() {
        let w = [cam(Some(120)), cam(Some(300)), cam(Some(720)), cam(None)];
        assert_eq!(allocate(None, &w), vec![0, 1, 2, 2]);
        // Plenty of bandwidth changes nothing.
        assert_eq!(allocate(Some(10_000_000), &w), vec![0, 1, 2, 2]);
    }

    #[test]
    fn a_small_budget_steps_the_costliest_down_first() {
        let w = [cam(Some(720)), cam(Some(720)), cam(Some(300))];
        // 1.5 + 1.5 + 0.5 = 3.5 Mbit/s wanted; 2.6 available: one big tile steps down
        // (of two equal, the later).
        assert_eq!(allocate(Some(2_600_000), &w), vec![2, 1, 1]);
        assert_eq!(allocate(Some(2_200_000), &w), vec![1, 1, 1]);
        assert_eq!(allocate(Some(1_600_000), &w), vec![1, 1, 1]);
        // A throttled subscriber ends at the lowest layer everywhere, never nothing.
        assert_eq!(allocate(Some(300_000), &w), vec![0, 0, 0]);
        assert_eq!(allocate(Some(0), &w), vec![0, 0, 0]);
    }

    #[test]
    fn screen_shares_keep_their_layer_longest() {
        let screen = Want {
            layers: vec![200_000, 1_200_000],
            tile_height: Some(100),
            screen: true,
        };
        let w = [screen, cam(Some(720))];
        assert_eq!(allocate(None, &w), vec![1, 2]);
        assert_eq!(allocate(Some(1_500_000), &w), vec![1, 0]);
        assert_eq!(allocate(Some(500_000), &w), vec![0, 0]);
    }

    #[test]
    fn publishers_without_simulcast_or_layers_are_left_alone() {
        let single = Want {
            layers: vec![800_000],
            tile_height: Some(100),
            screen: false,
        };
        let none = Want {
            layers: vec![],
            tile_height: None,
            screen: false,
        };
        assert_eq!(allocate(Some(100), &[single, none]), vec![0, 0]);
        assert_eq!(allocate(Some(100), &[]), Vec::<usize>::new());
    }
}
