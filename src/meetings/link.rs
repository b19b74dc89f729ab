//! Signed guest links: whoever holds a meeting's link may join it as a guest until the
//! meeting's end plus [`GRACE_MS`]. The token is `{expiry_ms}.{base64url(HMAC-SHA256(key,
//! "meeting:{id}:{expiry_ms}"))}`; nothing is stored per link. Each guest the meeting
//! invites by name or address also has a link of its own, `{expiry_ms}.g{n}.{base64url(
//! HMAC-SHA256(key, "meeting:{id}:{expiry_ms}:guest:{n}"))}` for the n-th guest (from 0):
//! whoever joins with it is that invitation (one ballot however many times it joins, under
//! whatever name). Pure: the key and `now` are passed in.

use base64::Engine;
use sha2::{Digest, Sha256};

/// How long after a meeting's scheduled end its link still admits guests.
pub const GRACE_MS: i64 = 12 * 3600 * 1000;

/// HMAC-SHA256 (RFC 2104).
fn hmac(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let pad = |b: u8| k.iter().map(|x| x ^ b).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

fn mac(key: &[u8], meeting: i64, expiry_ms: i64, guest: Option<usize>) -> [u8; 32] {
    match guest {
        None => hmac(key, format!("meeting:{meeting}:{expiry_ms}").as_bytes()),
        Some(g) => hmac(
            key,
            format!("meeting:{meeting}:{expiry_ms}:guest:{g}").as_bytes(),
        ),
    }
}

/// The meeting's shared link.
pub fn sign(key: &[u8], meeting: i64, expiry_ms: i64) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{expiry_ms}.{}",
        b64.encode(mac(key, meeting, expiry_ms, None))
    )
}

/// The link of the meeting's `guest`-th invited guest.
pub fn sign_guest(key: &[u8], meeting: i64, expiry_ms: i64, guest: usize) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let sig = b64.encode(mac(key, meeting, expiry_ms, Some(guest)));
    format!("{expiry_ms}.g{guest}.{sig}")
}

/// Why a token does not admit.
#[derive(Debug, PartialEq, Eq)]
pub enum LinkError {
    Malformed,
    BadSignature,
    Expired,
}

impl std::fmt::Display for LinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LinkError::Malformed => "the meeting link is malformed",
            LinkError::BadSignature => "the meeting link's signature is wrong",
            LinkError::Expired => "the meeting link has expired",
        })
    }
}

/// Whether `token` admits to `meeting` now: `Ok(None)` for the shared link, `Ok(Some(n))`
/// for the n-th invited guest's.
pub fn verify(
    key: &[u8],
    meeting: i64,
    token: &str,
    now_ms: i64,
) -> Result<Option<usize>, LinkError> {
    let (exp, rest) = token.split_once('.').ok_or(LinkError::Malformed)?;
    let exp: i64 = exp.parse().map_err(|_| LinkError::Malformed)?;
    let (guest, sig) = match rest.split_once('.') {
        None => (None, rest),
        Some((g, sig)) => {
            let n = g.strip_prefix('g').ok_or(LinkError::Malformed)?;
            if n.is_empty() || n.len() > 4 || !n.bytes().all(|b| b.is_ascii_digit()) {
                return Err(LinkError::Malformed);
            }
            (Some(n.parse().map_err(|_| LinkError::Malformed)?), sig)
        }
    };
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|_| LinkError::Malformed)?;
    let want = mac(key, meeting, exp, guest);
    // Constant time: every byte compared.
    if sig.len() != want.len() || sig.iter().zip(want).fold(0u8, |a, (x, y)| a | (x ^ y)) != 0 {
        return Err(LinkError::BadSignature);
    }
    if now_ms > exp {
        return Err(LinkError::Expired);
    }
    Ok(guest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        let mac = hmac(b"Jefe", b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn links_admit_until_expiry_and_only_for_their_meeting() {
        let key = [7u8; 32];
        let t = sign(&key, 12, 5_000);
        assert_eq!(verify(&key, 12, &t, 4_999), Ok(None));
        assert_eq!(verify(&key, 12, &t, 5_001), Err(LinkError::Expired));
        assert_eq!(verify(&key, 13, &t, 0), Err(LinkError::BadSignature));
        assert_eq!(verify(&[8u8; 32], 12, &t, 0), Err(LinkError::BadSignature));
        // A longer expiry with the old signature.
        let forged = format!("9999999{}", &t[4..]);
        assert_eq!(verify(&key, 12, &forged, 0), Err(LinkError::BadSignature));
        for bad in ["", ".", "x.y", "5000", "5000.", "5000.!!!"] {
            assert!(verify(&key, 12, bad, 0).is_err(), "{bad}");
        }
        // One flipped character of the signature.
        let mut b = t.clone().into_bytes();
        let last = b.len() - 2;
        b[last] = if b[last] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(b).unwrap();
        assert_eq!(verify(&key, 12, &flipped, 0), Err(LinkError::BadSignature));
    }

    #[test]
    fn each_invited_guest_has_a_link_of_its_own() {
        let key = [7u8; 32];
        let g2 = sign_guest(&key, 12, 5_000, 2);
        assert!(g2.starts_with("5000.g2."), "{g2}");
        assert_eq!(verify(&key, 12, &g2, 4_999), Ok(Some(2)));
        assert_eq!(verify(&key, 12, &g2, 5_001), Err(LinkError::Expired));
        assert_eq!(verify(&key, 13, &g2, 0), Err(LinkError::BadSignature));
        // Another guest's number, or none, with this signature.
        let other = g2.replacen(".g2.", ".g3.", 1);
        assert_eq!(verify(&key, 12, &other, 0), Err(LinkError::BadSignature));
        let shared = g2.replacen(".g2.", ".", 1);
        assert_eq!(verify(&key, 12, &shared, 0), Err(LinkError::BadSignature));
        // Nor does the shared link's signature make a guest's.
        let t = sign(&key, 12, 5_000);
        let forged = t.replacen('.', ".g0.", 1);
        assert_eq!(verify(&key, 12, &forged, 0), Err(LinkError::BadSignature));
        for bad in [
            "5000.g.x",
            "5000.2.x",
            "5000.g-1.x",
            "5000.g99999.x",
            "5000.g1.!!",
        ] {
            assert_eq!(verify(&key, 12, bad, 0), Err(LinkError::Malformed), "{bad}");
        }
    }
}
