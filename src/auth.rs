//! Authentication and authorisation logic with no I/O: roles and what they may do, password
//! hashing, secret tokens, and the failed-login rate limiter (driven by `now`).
//!
//! The HTTP side (cookies, the `Caller` extractor) lives in `api::caller`; the database side
//! in `store`.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use rand::{Rng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// What a user is. Per-camera grants narrow `Operator` and `Reviewer` further.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, on every camera.
    Admin,
    /// Commune police: live view and playback of granted cameras.
    Operator,
    /// Playback and export of granted cameras.
    Reviewer,
    /// Meetings only.
    Member,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Operator, Role::Reviewer, Role::Member];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Reviewer => "reviewer",
            Role::Member => "member",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Whether this role may use `what` on a camera it has a grant for (admins need none).
    pub fn may(self, what: CameraUse) -> bool {
        matches!(
            (self, what),
            (Role::Admin, _)
                | (
                    Role::Operator,
                    CameraUse::See | CameraUse::Live | CameraUse::Playback
                )
                | (
                    Role::Reviewer,
                    CameraUse::See | CameraUse::Playback | CameraUse::Export
                )
        )
    }
}

/// Uses of a camera that roles and grants allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CameraUse {
    /// Know it exists (listing).
    See,
    Live,
    Playback,
    Export,
}

/// Hashes a password with Argon2id and a random salt (PHC string). CPU-heavy: call it off
/// the async workers.
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters cannot fail")
        .to_string()
}

/// Checks `password` against a PHC string; a malformed hash never verifies.
pub fn verify_password(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(h) => Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok(),
        Err(_) => false,
    }
}

/// A hash to verify against when the user does not exist, so that timing does not tell.
pub fn dummy_hash() -> &'static str {
    static H: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    H.get_or_init(|| hash_password("not a real password"))
}

/// A new secret for a session cookie or an API token: 32 random bytes, base64url.
pub fn new_secret(prefix: &str) -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    )
}

/// What the database keeps of a secret: its SHA-256, hex. A leaked table gives no logins.
pub fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A readable random password for the first admin (no look-alike characters).
pub fn generate_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rngs::OsRng;
    (0..16)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Counts failed logins per key (a user name, an address) in a sliding window.
#[derive(Debug)]
pub struct LoginLimiter {
    window: Duration,
    failures: HashMap<String, VecDeque<Instant>>,
}

/// Keys tracked before old, empty entries are swept.
const SWEEP_AT: usize = 10_000;

impl LoginLimiter {
    pub fn new(window: Duration) -> Self {
        LoginLimiter {
            window,
            failures: HashMap::new(),
        }
    }

    /// `Err(retry_after)` when `key` has had `max` or more failures in the window.
    pub fn check(&mut self, key: &str, max: u32, now: Instant) -> Result<(), Duration> {
        let Some(q) = self.failures.get_mut(key) else {
            return Ok(());
        };
        Self::expire(q, self.window, now);
        if q.len() >= max as usize {
            let oldest = *q.front().expect("non-empty");
            return Err((oldest + self.window)
                .saturating_duration_since(now)
                .max(Duration::from_secs(1)));
        }
        Ok(())
    }

    pub fn record_failure(&mut self, key: &str, now: Instant) {
        if self.failures.len() >= SWEEP_AT && !self.failures.contains_key(key) {
            let window = self.window;
            self.failures.retain(|_, q| {
                Self::expire(q, window, now);
                !q.is_empty()
            });
        }
        let q = self.failures.entry(key.to_owned()).or_default();
        Self::expire(q, self.window, now);
        q.push_back(now);
    }

    pub fn reset(&mut self, key: &str) {
        self.failures.remove(key);
    }

    fn expire(q: &mut VecDeque<Instant>, window: Duration, now: Instant) {
        while q
            .front()
            .is_some_and(|&t| now.saturating_duration_since(t) >= window)
        {
            q.pop_front();
        }
    }

    pub fn tracked_keys(&self) -> usize {
        self.failures.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_round_trip() {
        let h = hash_password("mật khẩu dài");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("mật khẩu dài", &h));
        assert!(!verify_password("mật khẩu dai", &h));
        assert!(!verify_password("x", "not a phc string"));
    }

    #[test]
    fn secrets_are_distinct_and_hashed() {
        let a = new_secret("xaso_");
        let b = new_secret("xaso_");
        assert_ne!(a, b);
        assert!(a.starts_with("xaso_") && a.len() > 40);
        assert_eq!(secret_hash(&a).len(), 64);
        assert_ne!(secret_hash(&a), secret_hash(&b));
    }

    #[test]
    fn generated_passwords_are_long_enough() {
        let p = generate_password();
        assert_eq!(p.chars().count(), 16);
        assert!(p.chars().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn role_permissions() {
        use CameraUse::*;
        assert!(Role::Admin.may(Export));
        assert!(
            Role::Operator.may(Live) && Role::Operator.may(Playback) && !Role::Operator.may(Export)
        );
        assert!(!Role::Reviewer.may(Live) && Role::Reviewer.may(Export));
        assert!(!Role::Member.may(See));
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn limiter_blocks_after_max_and_forgets_after_window() {
        let t0 = Instant::now();
        let mut l = LoginLimiter::new(Duration::from_secs(300));
        for i in 0..5 {
            assert!(l.check("u:a", 5, t0).is_ok(), "attempt {i}");
            l.record_failure("u:a", t0 + Duration::from_secs(i));
        }
        let wait = l.check("u:a", 5, t0 + Duration::from_secs(10)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(290));
        assert!(l.check("u:b", 5, t0).is_ok(), "other keys unaffected");
        // The first failure leaves the window at t0+300 s.
        assert!(l.check("u:a", 5, t0 + Duration::from_secs(300)).is_ok());
        l.reset("u:a");
        assert!(l.check("u:a", 1, t0).is_ok());
    }

    #[test]
    fn limiter_memory_is_bounded_by_sweeping() {
        let t0 = Instant::now();
        let mut l = LoginLimiter::new(Duration::from_secs(1));
        for i in 0..SWEEP_AT {
            l.record_failure(&format!("a:{i}"), t0);
        }
        l.record_failure("a:new", t0 + Duration::from_secs(2));
        assert_eq!(l.tracked_keys(), 1);
    }
}
