//! HTTPS: the rustls server configuration, from configured PEM files or from a self-signed
//! certificate generated on first start and kept under `<data_dir>/tls/`.

use crate::config::{Config, TlsMode};
use anyhow::{Context, bail};
use std::net::IpAddr;
use std::path::PathBuf;

/// The certificate and key files to serve with, generating them if the mode asks for it.
/// `None` when TLS is off.
pub fn prepare(cfg: &Config) -> anyhow::Result<Option<(PathBuf, PathBuf)>> {
    match cfg.tls {
        TlsMode::Off => Ok(None),
        TlsMode::Files => {
            let (c, k) = (
                cfg.tls_cert.clone().expect("validated"),
                cfg.tls_key.clone().expect("validated"),
            );
            for p in [&c, &k] {
                if !p.is_file() {
                    bail!("TLS file {} does not exist", p.display());
                }
            }
            Ok(Some((c, k)))
        }
        TlsMode::SelfSigned => {
            let dir = cfg.data_dir.join("tls");
            let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
            if !(c.is_file() && k.is_file()) {
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                let (cert, key) = self_signed(cfg)?;
                std::fs::write(&c, cert).with_context(|| format!("writing {}", c.display()))?;
                write_private(&k, key.as_bytes())?;
                tracing::info!(cert = %c.display(), "generated a self-signed certificate");
            }
            Ok(Some((c, k)))
        }
    }
}

/// A self-signed certificate (PEM) and its key (PEM) for localhost, the loopback addresses,
/// the listen address and `tls_names`.
pub fn self_signed(cfg: &Config) -> anyhow::Result<(String, String)> {
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    let ip = cfg.listen.ip();
    if !ip.is_unspecified() && !ip.is_loopback() {
        names.push(ip.to_string());
    }
    names.extend(cfg.tls_names.iter().cloned());
    names.dedup();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    for n in &names {
        params.subject_alt_names.push(match n.parse::<IpAddr>() {
            Ok(ip) => rcgen::SanType::IpAddress(ip),
            Err(_) => rcgen::SanType::DnsName(
                n.clone()
                    .try_into()
                    .with_context(|| format!("bad TLS name {n:?}"))?,
            ),
        });
    }
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "xaso");
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "xaso (self-signed)");
    params.not_before = rcgen::date_time_ymd(2025, 1, 1);
    params.not_after = rcgen::date_time_ymd(2045, 1, 1);
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn write_private(path: &std::path::Path, data: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(data)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_certificate_is_generated_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config {
            data_dir: dir.path().to_owned(),
            tls: TlsMode::SelfSigned,
            tls_names: vec!["xaso.local".into(), "127.0.0.5".into()],
            ..Config::default()
        };
        let (c, k) = prepare(&cfg).unwrap().unwrap();
        let first = std::fs::read_to_string(&c).unwrap();
        assert!(first.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(std::fs::read_to_string(&k).unwrap().contains("PRIVATE KEY"));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&k).unwrap().permissions().mode() & 0o777,
            0o600
        );
        prepare(&cfg).unwrap();
        assert_eq!(
            std::fs::read_to_string(&c).unwrap(),
            first,
            "kept, not regenerated"
        );
    }
}
