//! Join tokens and the parent's identity: what `xaso node add` prints, what a child puts in
//! `[parent] token`, and the TLS check that binds the child to the parent it was issued by.
//!
//! A token is `xn1.` followed by 64 bytes in unpadded base64url: the child's secret (32
//! random bytes, which the parent keeps only hashed) and the SHA-256 of the parent's TLS
//! public key (its SubjectPublicKeyInfo). The child accepts a parent only if the certificate
//! it presents carries that key, so a child cannot be pointed at an impostor, and a
//! self-signed parent needs no certificate authority. Pinning the key rather than the
//! certificate lets the parent renew its certificate with the same key.

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;

const PREFIX: &str = "xn1.";

/// The SHA-256 of a parent's TLS public key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct KeyPin(pub [u8; 32]);

impl std::fmt::Debug for KeyPin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sha256/{}", hex::encode(self.0))
    }
}

/// A decoded join token.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// The secret the child presents (`Authorization: Bearer`), as text.
    pub secret: String,
    pub pin: KeyPin,
}

impl std::fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinToken")
            .field("secret", &"(hidden)")
            .field("pin", &self.pin)
            .finish()
    }
}

impl JoinToken {
    /// A new token for a child of the parent whose key is `pin`.
    pub fn generate(pin: KeyPin) -> JoinToken {
        use rand::RngCore;
        let mut s = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut s);
        JoinToken {
            secret: format!("xns.{}", URL_SAFE_NO_PAD.encode(s)),
            pin,
        }
    }

    /// The one-line form, `xn1.…`.
    pub fn encode(&self) -> String {
        let raw = self
            .secret
            .strip_prefix("xns.")
            .and_then(|s| URL_SAFE_NO_PAD.decode(s).ok())
            .expect("a generated secret");
        let mut b = raw;
        b.extend_from_slice(&self.pin.0);
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(b))
    }

    pub fn decode(text: &str) -> Result<JoinToken, String> {
        let body = text.trim().strip_prefix(PREFIX).ok_or(
            "not a join token: it starts with \"xn1.\" (made by `xaso node add` on the parent)",
        )?;
        let b = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| "the join token is damaged (not base64url); copy it again whole")?;
        if b.len() != 64 {
            return Err(format!(
                "the join token is damaged ({} bytes where 64 are expected); copy it again whole",
                b.len()
            ));
        }
        let mut pin = [0u8; 32];
        pin.copy_from_slice(&b[32..]);
        Ok(JoinToken {
            secret: format!("xns.{}", URL_SAFE_NO_PAD.encode(&b[..32])),
            pin: KeyPin(pin),
        })
    }
}

/// The pin of the public key in a DER certificate.
pub fn key_pin_of_der(der: &[u8]) -> anyhow::Result<KeyPin> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| anyhow::anyhow!("not an X.509 certificate: {e}"))?;
    Ok(KeyPin(
        Sha256::digest(cert.tbs_certificate.subject_pki.raw).into(),
    ))
}

/// The pin of the first certificate of a PEM file (the server's own certificate).
pub fn key_pin_of_pem_file(path: &Path) -> anyhow::Result<KeyPin> {
    let der = CertificateDer::from_pem_file(path)
        .with_context(|| format!("cannot read a PEM certificate from {}", path.display()))?;
    key_pin_of_der(&der).with_context(|| path.display().to_string())
}

/// The pin of this server's own TLS key, as a parent: its certificate must exist (a
/// self-signed one is made on first use). A parent needs HTTPS: its children's links are
/// encrypted and bound to its key.
pub fn own_pin(cfg: &crate::config::Config) -> anyhow::Result<KeyPin> {
    match crate::tls::prepare(cfg)? {
        Some((cert, _)) => key_pin_of_pem_file(&cert),
        None => bail!(
            "a parent node needs HTTPS for its children's links: set tls = \"self-signed\" (or \"files\") in the configuration"
        ),
    }
}

/// A rustls verifier that accepts exactly the certificates carrying the pinned key, whatever
/// their names or dates (the handshake's signature is still checked, so the peer holds the
/// key), and nothing else.
#[derive(Debug)]
pub struct PinVerifier {
    pin: KeyPin,
    provider: Arc<CryptoProvider>,
}

impl PinVerifier {
    pub fn new(pin: KeyPin, provider: Arc<CryptoProvider>) -> Self {
        PinVerifier { pin, provider }
    }
}

/// The message of the error a wrong parent key gives (the link shows it to the admin).
pub const IMPOSTOR: &str = "the parent's TLS key is not the one in the join token (a different server, or the parent's key changed: ask its admin for a new token)";

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match key_pin_of_der(end_entity) {
            Ok(p) if p == self.pin => Ok(ServerCertVerified::assertion()),
            Ok(_) => Err(rustls::Error::General(IMPOSTOR.into())),
            Err(e) => Err(rustls::Error::General(format!(
                "the parent's certificate cannot be read: {e}"
            ))),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The TLS client configuration of a child's link: the pinned key, HTTP/1.1 (the link is
/// a WebSocket).
pub fn client_config(pin: KeyPin) -> anyhow::Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut c = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinVerifier::new(pin, provider)))
        .with_no_client_auth();
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_der() -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn a_token_round_trips_and_hides_its_secret() {
        let t = JoinToken::generate(KeyPin([7; 32]));
        let line = t.encode();
        assert!(line.starts_with("xn1.") && !line.contains(char::is_whitespace));
        assert_eq!(JoinToken::decode(&format!("  {line}\n")).unwrap(), t);
        assert!(!format!("{t:?}").contains(&t.secret[4..]));
        assert_ne!(JoinToken::generate(KeyPin([7; 32])).secret, t.secret);
    }

    #[test]
    fn a_damaged_token_is_a_clear_error() {
        let line = JoinToken::generate(KeyPin([1; 32])).encode();
        for (bad, says) in [
            ("xaso_abc", "not a join token"),
            ("xn1.***", "not base64url"),
            (&line[..line.len() - 4], "64 are expected"),
        ] {
            let e = JoinToken::decode(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn the_pin_follows_the_key_not_the_certificate() {
        let key = rcgen::KeyPair::generate().unwrap();
        let a = rcgen::CertificateParams::new(vec!["a.local".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let b = rcgen::CertificateParams::new(vec!["b.local".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        assert_ne!(a.der(), b.der());
        assert_eq!(
            key_pin_of_der(a.der()).unwrap(),
            key_pin_of_der(b.der()).unwrap()
        );
        assert_ne!(
            key_pin_of_der(a.der()).unwrap(),
            key_pin_of_der(&cert_der()).unwrap()
        );
        assert!(key_pin_of_der(b"not a certificate").is_err());
    }

    #[test]
    fn the_verifier_takes_the_pinned_key_only() {
        let der = cert_der();
        let pin = key_pin_of_der(&der).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let v = PinVerifier::new(pin, provider.clone());
        let name = ServerName::try_from("198.51.100.7").unwrap();
        let now = UnixTime::now();
        let cert = CertificateDer::from(der);
        assert!(v.verify_server_cert(&cert, &[], &name, &[], now).is_ok());
        let other = CertificateDer::from(cert_der());
        let e = v
            .verify_server_cert(&other, &[], &name, &[], now)
            .unwrap_err();
        assert!(
            e.to_string().contains("not the one in the join token"),
            "{e}"
        );
        let v = PinVerifier::new(KeyPin([0; 32]), provider);
        assert!(v.verify_server_cert(&cert, &[], &name, &[], now).is_err());
    }
}
