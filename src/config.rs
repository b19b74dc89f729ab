//! Configuration: the TOML file, `XASO_...` environment overrides, and command-line flags,
//! merged in that order into one validated [`Config`].
//!
//! Every key has a default (documented in `config/xaso.example.toml`), so no file at all is a
//! valid configuration. Unknown keys, in the file or in the environment, are errors that name
//! the line or the variable.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Environment variables that start with `XASO_` but are not configuration keys.
pub const NON_CONFIG_ENV: &[&str] = &["XASO_ADMIN_PASSWORD", "XASO_LOG"];

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the database (by default) and, later, footage live.
    pub data_dir: PathBuf,
    /// `sqlite://...` or `postgres://...`; empty means `sqlite://<data_dir>/xaso.db`.
    pub database_url: String,
    /// Address and port of the HTTP(S) server.
    pub listen: SocketAddr,
    /// `off`, `self-signed` (generated on first start, kept in `<data_dir>/tls/`), or `files`.
    pub tls: TlsMode,
    /// With `tls = "files"`: PEM certificate chain and private key.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Extra host names / addresses for the self-signed certificate (e.g. the box's LAN IP).
    pub tls_names: Vec<String>,
    /// `human` or `json`.
    pub log_format: LogFormat,
    pub auth: AuthConfig,
    pub http: HttpConfig,
    pub recording: RecordingConfig,
    pub playback: PlaybackConfig,
    pub webrtc: WebrtcConfig,
    pub meetings: MeetingsConfig,
    /// The node above this one in the tree of xaso nodes (none by default).
    pub parent: ParentConfig,
    /// Cameras declared here are kept in the catalogue as declared (`[[camera]]`).
    #[serde(rename = "camera")]
    pub cameras: Vec<CameraConfig>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RecordingConfig {
    /// A segment file is closed at the first keyframe after this many seconds.
    pub segment_secs: u32,
    /// Footage reaches the disk in fragments of at most this long, synced within 200 ms:
    /// at most this much plus 200 ms is lost if the power fails.
    pub fragment_ms: u32,
    /// Longest wait between attempts to reach a camera that is down.
    pub reconnect_max_ms: u32,
    /// A camera that sends nothing for this long is reconnected.
    pub stall_timeout_secs: u32,
    /// Footage older than this is deleted (per camera: `retention_days` in `[[camera]]`).
    pub retention_days: u32,
    /// The oldest footage is deleted to keep at least this much disk free.
    pub keep_free_gb: f64,
    /// With no camera at all, record a built-in simulated camera (for a first look).
    pub simulated_camera: bool,
}

/// Live view over WebRTC (`[webrtc]`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WebrtcConfig {
    /// The one UDP port every WebRTC session uses; 0 picks a free port at start (it is
    /// logged). Set a fixed one when a firewall sits between viewers and the box.
    pub udp_port: u16,
    /// Addresses offered to browsers as host candidates (and bound). Empty: the HTTP
    /// listen address when it is a specific one, else 127.0.0.1 and the address of the
    /// default route. No STUN server is ever contacted. (`public_ips` is read as a synonym.)
    #[serde(alias = "public_ips")]
    pub addresses: Vec<std::net::IpAddr>,
    /// ICE-TCP: also offer a passive TCP candidate on each address, for networks that let
    /// no UDP through (RFC 6544; datagrams framed as RFC 4571 says).
    pub ice_tcp: bool,
    /// The TCP port for ICE-TCP; 0 picks a free port at start.
    pub tcp_port: u16,
    /// STUN/TURN servers handed to browsers (the Live page, and `Link` headers of WHEP
    /// answers), e.g. a TURN server for viewers behind a strict NAT. None by default:
    /// nothing outside the box is contacted unless listed here.
    pub ice_servers: Vec<IceServer>,
}

impl Default for WebrtcConfig {
    fn default() -> Self {
        WebrtcConfig {
            udp_port: 0,
            addresses: Vec::new(),
            ice_tcp: true,
            tcp_port: 0,
            ice_servers: Vec::new(),
        }
    }
}

/// One `[[webrtc.ice_servers]]` entry, as `RTCIceServer` in browsers.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IceServer {
    /// `stun:host:port`, `turn:host:port?transport=udp|tcp` or `turns:host:port`.
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PlaybackConfig {
    /// The longest range one MP4 export may cover.
    pub max_export_hours: u32,
}

impl Default for PlaybackConfig {
    fn default() -> Self {
        PlaybackConfig {
            max_export_hours: 24,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MeetingsConfig {
    /// The largest document a participant may share, in MB.
    pub max_document_mb: u32,
    /// Pages publish their camera in three simulcast layers, of which each participant
    /// receives the one that fits its tile and bandwidth (off: one layer for everyone).
    pub simulcast: bool,
    /// The address people open the server at (`https://xaso.xa.local:8443`), for links in
    /// e-mails. Required with `smtp`.
    pub public_url: String,
    /// Reminders by e-mail, 15 minutes before a meeting, to its guests listed by address.
    pub smtp: Option<SmtpConfig>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// The relay's host name or address (its TLS certificate must name it).
    pub host: String,
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    /// The sender address, e.g. `xaso@xa.example.vn`.
    pub from: String,
    /// `none` (a relay on the LAN, port 25), `starttls` (port 587) or `tls` (port 465).
    #[serde(default)]
    pub tls: crate::meetings::mail::SmtpTls,
    /// A login for the relay (AUTH PLAIN or LOGIN), only over TLS. The password may come
    /// from the environment instead: `XASO_MEETINGS__SMTP__PASSWORD`.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default, serialize_with = "redacted")]
    pub password: Option<String>,
    /// A PEM file of certificates to trust beside the public roots (the relay's private
    /// CA, or its own self-signed certificate).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

/// The parent node this one joins (`[parent]`): its address and the join token that
/// `xaso node add` printed there. Both or neither.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ParentConfig {
    /// `https://host[:port]` of the parent; empty: this node has no parent.
    pub url: String,
    /// The join token (`xn1.…`); may come from `XASO_PARENT__TOKEN` instead.
    #[serde(serialize_with = "redacted")]
    pub token: Option<String>,
}

impl ParentConfig {
    /// The parent to dial, when one is configured (checked by [`Config::load`]).
    pub fn target(&self) -> Option<(String, crate::federation::token::JoinToken)> {
        let token = self.token.as_deref()?;
        let t = crate::federation::token::JoinToken::decode(token).ok()?;
        (!self.url.is_empty()).then(|| (self.url.trim().to_owned(), t))
    }
}

/// Secrets are not shown (`xaso config check` prints the configuration).
fn redacted<S: serde::Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(_) => s.serialize_some("(hidden)"),
        None => s.serialize_none(),
    }
}

fn default_smtp_port() -> u16 {
    25
}

impl Default for MeetingsConfig {
    fn default() -> Self {
        MeetingsConfig {
            max_document_mb: 20,
            simulcast: true,
            public_url: String::new(),
            smtp: None,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    pub name: String,
    /// `rtsp://user:password@host:port/path`
    pub url: String,
    pub substream_url: Option<String>,
    #[serde(default = "default_transport")]
    pub transport: String,
    #[serde(default = "default_true")]
    pub record: bool,
    pub retention_days: Option<u32>,
    pub quota_gb: Option<f64>,
}

fn default_transport() -> String {
    "tcp".into()
}

fn default_true() -> bool {
    true
}

impl Default for RecordingConfig {
    fn default() -> Self {
        RecordingConfig {
            segment_secs: 300,
            fragment_ms: 500,
            reconnect_max_ms: 2000,
            stall_timeout_secs: 10,
            retention_days: 30,
            keep_free_gb: 1.0,
            simulated_camera: true,
        }
    }
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    Off,
    SelfSigned,
    Files,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// A session ends this many minutes after login.
    pub session_ttl_minutes: u64,
    /// Failed logins allowed per user name within `login_window_secs`, then 429.
    pub login_max_failures_per_user: u32,
    /// Failed logins allowed per client address within `login_window_secs`, then 429.
    pub login_max_failures_per_address: u32,
    pub login_window_secs: u64,
    /// Shortest password accepted for new passwords.
    pub min_password_len: usize,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Largest request body accepted by JSON endpoints, in bytes.
    pub max_body_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./xaso-data"),
            database_url: String::new(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            tls: TlsMode::Off,
            tls_cert: None,
            tls_key: None,
            tls_names: Vec::new(),
            log_format: LogFormat::Human,
            auth: AuthConfig::default(),
            http: HttpConfig::default(),
            recording: RecordingConfig::default(),
            playback: PlaybackConfig::default(),
            meetings: MeetingsConfig::default(),
            parent: ParentConfig::default(),
            webrtc: WebrtcConfig::default(),
            cameras: Vec::new(),
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            session_ttl_minutes: 12 * 60,
            login_max_failures_per_user: 5,
            login_max_failures_per_address: 20,
            login_window_secs: 300,
            min_password_len: 8,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_body_bytes: 1 << 20,
        }
    }
}

/// Overrides given on the command line; they win over the file and the environment.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    pub log_format: Option<LogFormat>,
}

impl Config {
    /// The effective database URL.
    pub fn database_url(&self) -> String {
        if self.database_url.is_empty() {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("xaso.db").display()
            )
        } else {
            self.database_url.clone()
        }
    }

    /// Whether cookies must carry `Secure` (only when served over HTTPS).
    pub fn https(&self) -> bool {
        self.tls != TlsMode::Off
    }

    /// Loads `file` (if any), applies `env` (`(name, value)` pairs; only `XASO_` ones count),
    /// then `overrides`, and validates the result.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &Overrides,
    ) -> Result<Config, String> {
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
                parse_file(&text).map_err(|e| format!("{}: {e}", path.display()))?
            }
            None => toml::Table::new(),
        };
        let mut vars: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("XASO_") && !NON_CONFIG_ENV.contains(&k.as_str()))
            .collect();
        vars.sort();
        for (name, value) in &vars {
            let mut single = toml::Table::new();
            set_env_key(&mut single, name, value)?;
            if let Err(e) = Config::deserialize(toml::Value::Table(single)) {
                // A key of a table whose other keys come from the file (a password beside
                // the relay's host) only makes sense with them.
                let mut with_file = table.clone();
                set_env_key(&mut with_file, name, value)?;
                if Config::deserialize(toml::Value::Table(with_file)).is_err() {
                    return Err(format!("environment variable {name}: {}", e.message()));
                }
            }
            set_env_key(&mut table, name, value)?;
        }
        let mut cfg = Config::deserialize(toml::Value::Table(table))
            .map_err(|e| format!("configuration: {}", e.message()))?;
        if let Some(d) = &overrides.data_dir {
            cfg.data_dir = d.clone();
        }
        if let Some(l) = overrides.listen {
            cfg.listen = l;
        }
        if let Some(f) = overrides.log_format {
            cfg.log_format = f;
        }
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), String> {
        if self.tls == TlsMode::Files && (self.tls_cert.is_none() || self.tls_key.is_none()) {
            return Err("tls = \"files\" needs both tls_cert and tls_key".into());
        }
        if self.auth.session_ttl_minutes == 0 {
            return Err("auth.session_ttl_minutes must be at least 1".into());
        }
        if self.auth.login_window_secs == 0 {
            return Err("auth.login_window_secs must be at least 1".into());
        }
        if self.auth.min_password_len < 8 {
            return Err("auth.min_password_len must be at least 8".into());
        }
        if self.http.max_body_bytes < 1024 {
            return Err("http.max_body_bytes must be at least 1024".into());
        }
        let mt = &self.meetings;
        if mt.max_document_mb == 0 || mt.max_document_mb > 2048 {
            return Err("meetings.max_document_mb must be between 1 and 2048".into());
        }
        if let Some(smtp) = &mt.smtp {
            if !(mt.public_url.starts_with("http://") || mt.public_url.starts_with("https://")) {
                return Err("meetings.smtp needs meetings.public_url (https://…), for the links in the e-mails".into());
            }
            if smtp.host.is_empty() || !crate::meetings::mail::is_email(&smtp.from) {
                return Err("meetings.smtp needs a host and a from address".into());
            }
            if smtp.username.is_some() != smtp.password.is_some() {
                return Err("meetings.smtp: a login needs both username and password".into());
            }
            if smtp.username.is_some() && smtp.tls == crate::meetings::mail::SmtpTls::None {
                return Err("meetings.smtp: a login is only sent over TLS: set tls = \"starttls\" or \"tls\"".into());
            }
            if let Some(f) = &smtp.ca_file
                && !f.is_file()
            {
                return Err(format!(
                    "meetings.smtp.ca_file {} does not exist",
                    f.display()
                ));
            }
        }
        let p = &self.parent;
        match (p.url.trim().is_empty(), &p.token) {
            (true, None) => {}
            (false, Some(t)) => {
                crate::federation::uplink::parse_url(&p.url)
                    .map_err(|e| format!("parent.url: {e}"))?;
                crate::federation::token::JoinToken::decode(t)
                    .map_err(|e| format!("parent.token: {e}"))?;
            }
            (false, None) => {
                return Err("parent.url needs parent.token (the line `xaso node add` printed on the parent), or XASO_PARENT__TOKEN".into());
            }
            (true, Some(_)) => {
                return Err("parent.token needs parent.url (https://… of the parent)".into());
            }
        }
        let r = &self.recording;
        if !(2..=3600).contains(&r.segment_secs) {
            return Err("recording.segment_secs must be between 2 and 3600".into());
        }
        if !(100..=800).contains(&r.fragment_ms) {
            return Err("recording.fragment_ms must be between 100 and 800 (crash safety)".into());
        }
        if r.retention_days == 0
            || r.keep_free_gb < 0.0
            || r.reconnect_max_ms < 100
            || r.stall_timeout_secs < 2
        {
            return Err("recording: retention_days >= 1, keep_free_gb >= 0, reconnect_max_ms >= 100, stall_timeout_secs >= 2".into());
        }
        if !(1..=24 * 31).contains(&self.playback.max_export_hours) {
            return Err("playback.max_export_hours must be between 1 and 744".into());
        }
        for s in &self.webrtc.ice_servers {
            let ok = |u: &String| {
                ["stun:", "turn:", "turns:"]
                    .iter()
                    .any(|p| u.starts_with(p))
            };
            if s.urls.is_empty() || !s.urls.iter().all(ok) {
                return Err(
                    "webrtc.ice_servers: each needs urls starting stun:, turn: or turns:".into(),
                );
            }
        }
        let mut names = std::collections::HashSet::new();
        for c in &self.cameras {
            if !names.insert(c.name.as_str()) {
                return Err(format!("camera {:?} is declared twice", c.name));
            }
            crate::store::CameraSettings::from_config(c)
                .validate()
                .map_err(|e| format!("camera {:?}: {}", c.name, e.message()))?;
        }
        let url = self.database_url();
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return Err(format!(
                "database_url must start with sqlite:, postgres:// or postgresql://, not {:?}",
                url.split(':').next().unwrap_or("")
            ));
        }
        Ok(())
    }
}

/// Parses a config file's text, checking it against [`Config`] so that an unknown key or a
/// wrong type is reported with its line and column.
fn parse_file(text: &str) -> Result<toml::Table, String> {
    toml::from_str::<Config>(text).map_err(|e| e.to_string().trim_end().to_owned())?;
    toml::from_str::<toml::Table>(text).map_err(|e| e.to_string())
}

/// `XASO_AUTH__SESSION_TTL_MINUTES=60` sets `auth.session_ttl_minutes = 60`: the prefix goes,
/// `__` separates tables, the rest is lower-cased. The value is read as a TOML value when it
/// is one (`60`, `true`, `["a"]`), else as a string.
fn set_env_key(table: &mut toml::Table, name: &str, value: &str) -> Result<(), String> {
    let path: Vec<String> = name["XASO_".len()..]
        .split("__")
        .map(|p| p.to_ascii_lowercase())
        .collect();
    if path.iter().any(|p| p.is_empty()) {
        return Err(format!("environment variable {name}: malformed name"));
    }
    let parsed = toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_owned()));
    let (last, parents) = path.split_last().expect("non-empty path");
    let mut t = table;
    for p in parents {
        let entry = t
            .entry(p.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        t = entry
            .as_table_mut()
            .ok_or_else(|| format!("environment variable {name}: {p} is not a table"))?;
    }
    t.insert(last.clone(), parsed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_smtp_login_goes_with_tls_and_its_password_is_not_shown() {
        let base = "[meetings]\npublic_url = \"https://xaso.xa.test\"\n[meetings.smtp]\nhost = \"mail.xa.test\"\nport = 587\nfrom = \"xaso@xa.test\"\n";
        // A login over plain SMTP, or half a login, is refused.
        let e = load_str(
            &format!("{base}username = \"xaso\"\npassword = \"bí-mật\"\n"),
            &[],
        )
        .unwrap_err();
        assert!(e.contains("only sent over TLS"), "{e}");
        let e = load_str(
            &format!("{base}tls = \"starttls\"\nusername = \"xaso\"\n"),
            &[],
        )
        .unwrap_err();
        assert!(e.contains("both username and password"), "{e}");
        // The password from the environment; `config check` shows it hidden.
        let c = load_str(
            &format!("{base}tls = \"starttls\"\nusername = \"xaso\"\n"),
            &[("XASO_MEETINGS__SMTP__PASSWORD", "bí-mật")],
        )
        .unwrap();
        let smtp = c.meetings.smtp.as_ref().unwrap();
        assert_eq!(smtp.tls, crate::meetings::mail::SmtpTls::Starttls);
        assert_eq!(smtp.password.as_deref(), Some("bí-mật"));
        let shown = toml::to_string_pretty(&c).unwrap();
        assert!(
            !shown.contains("bí-mật") && shown.contains("(hidden)"),
            "{shown}"
        );
        let e = load_str(
            &format!("{base}tls = \"tls\"\nca_file = \"/nonexistent/ca.pem\"\n"),
            &[],
        )
        .unwrap_err();
        assert!(e.contains("does not exist"), "{e}");
        assert!(load_str(&format!("{base}tls = \"ssl\"\n"), &[]).is_err());
    }

    fn load_str(text: &str, env: &[(&str, &str)]) -> Result<Config, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.toml");
        std::fs::write(&path, text).unwrap();
        Config::load(
            Some(&path),
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
            &Overrides::default(),
        )
    }

    #[test]
    fn no_file_gives_defaults() {
        let c = Config::load(None, Vec::new(), &Overrides::default()).unwrap();
        assert_eq!(c, Config::default());
        assert!(c.database_url().starts_with("sqlite://"));
    }

    #[test]
    fn example_file_is_valid_and_matches_defaults() {
        let text = include_str!("../config/xaso.example.toml");
        assert_eq!(load_str(text, &[]).unwrap(), Config::default());
    }

    #[test]
    fn unknown_key_names_its_line() {
        let e = load_str(
            "listen = \"127.0.0.1:9000\"\n\n[auth]\nsession_ttl = 5\n",
            &[],
        )
        .unwrap_err();
        assert!(e.contains("line 4"), "{e}");
        assert!(e.contains("session_ttl"), "{e}");
    }

    #[test]
    fn ice_servers_are_read_and_checked() {
        let c = load_str(
            "[[webrtc.ice_servers]]\nurls = [\"turn:127.0.0.1:3478\"]\nusername = \"u\"\ncredential = \"p\"\n",
            &[],
        )
        .unwrap();
        assert_eq!(c.webrtc.ice_servers[0].urls, ["turn:127.0.0.1:3478"]);
        assert!(c.webrtc.ice_tcp, "ICE-TCP is on by default");
        let c = load_str("[webrtc]\npublic_ips = [\"127.0.0.9\"]\n", &[]).unwrap();
        assert_eq!(
            c.webrtc.addresses,
            ["127.0.0.9".parse::<std::net::IpAddr>().unwrap()]
        );
        let e = load_str("[[webrtc.ice_servers]]\nurls = [\"http://x\"]\n", &[]).unwrap_err();
        assert!(e.contains("ice_servers"), "{e}");
        assert!(load_str("[[webrtc.ice_servers]]\nurls = []\n", &[]).is_err());
    }

    #[test]
    fn wrong_type_names_its_line() {
        let e = load_str("\nlisten = 8080\n", &[]).unwrap_err();
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn env_overrides_file_and_flags_override_env() {
        let c = load_str(
            "listen = \"127.0.0.1:9000\"\n",
            &[
                ("XASO_LISTEN", "127.0.0.1:9100"),
                ("XASO_AUTH__SESSION_TTL_MINUTES", "60"),
                ("XASO_TLS", "self-signed"),
                ("XASO_ADMIN_PASSWORD", "not-a-key"),
                ("HOME", "/root"),
            ],
        )
        .unwrap();
        assert_eq!(c.listen.port(), 9100);
        assert_eq!(c.auth.session_ttl_minutes, 60);
        assert_eq!(c.tls, TlsMode::SelfSigned);

        let o = Overrides {
            listen: Some("127.0.0.1:9200".parse().unwrap()),
            ..Default::default()
        };
        let c = Config::load(
            None,
            vec![("XASO_LISTEN".into(), "127.0.0.1:9100".into())],
            &o,
        )
        .unwrap();
        assert_eq!(c.listen.port(), 9200);
    }

    #[test]
    fn unknown_env_key_is_an_error_naming_the_variable() {
        let e = load_str("", &[("XASO_LISTN", "127.0.0.1:1")]).unwrap_err();
        assert!(e.contains("XASO_LISTN"), "{e}");
        let e = load_str("", &[("XASO_AUTH__NOPE", "1")]).unwrap_err();
        assert!(e.contains("XASO_AUTH__NOPE"), "{e}");
    }

    #[test]
    fn semantic_checks() {
        assert!(
            load_str("tls = \"files\"\n", &[])
                .unwrap_err()
                .contains("tls_cert")
        );
        assert!(
            load_str("tls = \"maybe\"\n", &[])
                .unwrap_err()
                .contains("line 1")
        );
        assert!(
            load_str("database_url = \"mysql://x\"\n", &[])
                .unwrap_err()
                .contains("database_url")
        );
        assert!(load_str("[auth]\nmin_password_len = 4\n", &[]).is_err());
    }

    #[test]
    fn a_parent_needs_an_https_url_and_a_whole_token() {
        let t = crate::federation::token::JoinToken::generate(crate::federation::token::KeyPin(
            [7; 32],
        ))
        .encode();
        let c = load_str(
            "[parent]\nurl = \"https://tinh.example.vn:8443\"\n",
            &[("XASO_PARENT__TOKEN", &t)],
        )
        .unwrap();
        let (url, tok) = c.parent.target().unwrap();
        assert_eq!(url, "https://tinh.example.vn:8443");
        assert_eq!(tok.pin.0, [7; 32]);
        let shown = toml::to_string_pretty(&c).unwrap();
        assert!(!shown.contains(&t) && shown.contains("(hidden)"), "{shown}");
        let e = load_str("[parent]\nurl = \"https://p.test\"\n", &[]).unwrap_err();
        assert!(e.contains("parent.token"), "{e}");
        let e = load_str(
            "[parent]\nurl = \"http://p.test\"\n",
            &[("XASO_PARENT__TOKEN", &t)],
        )
        .unwrap_err();
        assert!(e.contains("https://"), "{e}");
        let e = load_str(
            "[parent]\nurl = \"https://p.test\"\n",
            &[("XASO_PARENT__TOKEN", &t[..t.len() - 3])],
        )
        .unwrap_err();
        assert!(e.contains("damaged"), "{e}");
        assert!(Config::default().parent.target().is_none());
    }

    #[test]
    fn syntax_error_names_its_line() {
        let e = load_str("a = 1\nlisten = \"x\n", &[]).unwrap_err();
        assert!(e.contains("line 2"), "{e}");
    }
}
