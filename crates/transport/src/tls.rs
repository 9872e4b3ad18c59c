//! TLS for the media connection: server identities (PEM files or a generated
//! development certificate), client trust (SHA-256 pinning or CA certificates),
//! and the rustls configurations quinn needs.
//!
//! Only TLS 1.3 (QUIC requires it) with the `ring` provider, ALPN [`AUDIO_ALPN`].

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

use crate::wire::AUDIO_ALPN;

/// Errors while loading or building TLS material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file could not be read or parsed.
    #[error("reading PEM {what} from {path}: {detail}")]
    Pem {
        /// "certificate", "private key", ...
        what: &'static str,
        /// The file.
        path: String,
        /// What went wrong.
        detail: String,
    },
    /// The PEM file holds no certificate.
    #[error("no certificate found in {0}")]
    NoCertificate(String),
    /// Generating the development certificate failed.
    #[error("generating a self-signed certificate: {0}")]
    Generate(String),
    /// Writing PEM files failed.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// rustls rejected the configuration (e.g. key does not match certificate).
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// quinn rejected the rustls configuration.
    #[error("QUIC crypto configuration: {0}")]
    Quic(String),
    /// A fingerprint string is not 32 hex bytes.
    #[error("invalid SHA-256 fingerprint {0:?}: expected 32 hex bytes, optionally ':'-separated")]
    BadFingerprint(String),
}

/// SHA-256 fingerprint of a DER certificate.
///
/// Displays as uppercase hex bytes separated by colons (`AB:CD:...`), the form
/// `openssl x509 -fingerprint -sha256` prints; parses with or without colons, any case.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CertFingerprint(pub [u8; 32]);

impl CertFingerprint {
    /// Fingerprint of a DER-encoded certificate.
    pub fn of(cert_der: &[u8]) -> Self {
        CertFingerprint(Sha256::digest(cert_der).into())
    }
}

impl fmt::Display for CertFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for CertFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CertFingerprint({self})")
    }
}

impl FromStr for CertFingerprint {
    type Err = TlsError;
    fn from_str(s: &str) -> Result<Self, TlsError> {
        let hex: Vec<u8> = s.bytes().filter(|b| *b != b':').collect();
        let bad = || TlsError::BadFingerprint(s.to_owned());
        if hex.len() != 64 {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, pair) in hex.chunks_exact(2).enumerate() {
            let txt = std::str::from_utf8(pair).map_err(|_| bad())?;
            out[i] = u8::from_str_radix(txt, 16).map_err(|_| bad())?;
        }
        Ok(CertFingerprint(out))
    }
}

/// The `ring` crypto provider used for every configuration of this crate.
///
/// Explicit, so the crate works whatever process-wide default provider other
/// crates install.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Certificate chain and private key the media server presents.
#[derive(Debug)]
pub struct ServerIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    /// PEM text of the generated key (development mode only).
    generated_key_pem: Option<String>,
}

impl Clone for ServerIdentity {
    fn clone(&self) -> Self {
        ServerIdentity {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            generated_key_pem: self.generated_key_pem.clone(),
        }
    }
}

impl ServerIdentity {
    /// Loads a certificate chain (leaf first) and a private key (PKCS#8, PKCS#1 or
    /// SEC1) from PEM files.
    pub fn from_pem_files(
        cert_path: impl AsRef<Path>,
        key_path: impl AsRef<Path>,
    ) -> Result<Self, TlsError> {
        let cert_path = cert_path.as_ref();
        let key_path = key_path.as_ref();
        let chain = load_certs(cert_path)?;
        let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| TlsError::Pem {
            what: "private key",
            path: key_path.display().to_string(),
            detail: e.to_string(),
        })?;
        Ok(ServerIdentity {
            chain,
            key,
            generated_key_pem: None,
        })
    }

    /// Loads a certificate chain and key from PEM text.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, TlsError> {
        let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::Pem {
                what: "certificate",
                path: "<memory>".into(),
                detail: e.to_string(),
            })?;
        if chain.is_empty() {
            return Err(TlsError::NoCertificate("<memory>".into()));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| TlsError::Pem {
            what: "private key",
            path: "<memory>".into(),
            detail: e.to_string(),
        })?;
        Ok(ServerIdentity {
            chain,
            key,
            generated_key_pem: None,
        })
    }

    /// Development mode: a fresh self-signed certificate (ECDSA P-256) for the given
    /// DNS names and/or IP addresses. Clients pin it with [`Self::fingerprint`].
    pub fn self_signed<S: AsRef<str>>(hosts: &[S]) -> Result<Self, TlsError> {
        let names: Vec<String> = hosts.iter().map(|h| h.as_ref().to_owned()).collect();
        let names = if names.is_empty() {
            vec!["localhost".to_owned()]
        } else {
            names
        };
        let ck = rcgen::generate_simple_self_signed(names)
            .map_err(|e| TlsError::Generate(e.to_string()))?;
        let key_der = ck.signing_key.serialize_der();
        let key = PrivateKeyDer::try_from(key_der).map_err(|e| TlsError::Generate(e.to_owned()))?;
        Ok(ServerIdentity {
            chain: vec![ck.cert.der().clone()],
            key,
            generated_key_pem: Some(ck.signing_key.serialize_pem()),
        })
    }

    /// SHA-256 fingerprint of the leaf certificate.
    pub fn fingerprint(&self) -> CertFingerprint {
        CertFingerprint::of(self.chain.first().map(|c| c.as_ref()).unwrap_or_default())
    }

    /// The certificate chain, leaf first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// The certificate chain as PEM text.
    pub fn cert_pem(&self) -> String {
        let mut out = String::new();
        for c in &self.chain {
            out.push_str(&pem_encode("CERTIFICATE", c.as_ref()));
        }
        out
    }

    /// The private key as PEM text (PKCS#8 `PRIVATE KEY` unless loaded otherwise).
    pub fn key_pem(&self) -> String {
        if let Some(pem) = &self.generated_key_pem {
            return pem.clone();
        }
        let label = match &self.key {
            PrivateKeyDer::Pkcs1(_) => "RSA PRIVATE KEY",
            PrivateKeyDer::Sec1(_) => "EC PRIVATE KEY",
            _ => "PRIVATE KEY",
        };
        pem_encode(label, self.key.secret_der())
    }

    /// Writes the chain and the key as PEM files (the key file is created with mode
    /// 0600 on Unix), e.g. to hand a development certificate to a peer.
    pub fn write_pem_files(
        &self,
        cert_path: impl AsRef<Path>,
        key_path: impl AsRef<Path>,
    ) -> Result<(), TlsError> {
        let cert_path = cert_path.as_ref();
        let key_path = key_path.as_ref();
        std::fs::write(cert_path, self.cert_pem()).map_err(|source| TlsError::Write {
            path: cert_path.display().to_string(),
            source,
        })?;
        write_private(key_path, self.key_pem().as_bytes()).map_err(|source| TlsError::Write {
            path: key_path.display().to_string(),
            source,
        })
    }

    /// The rustls server configuration (TLS 1.3, ALPN [`AUDIO_ALPN`], no client auth).
    pub fn rustls_server_config(&self) -> Result<rustls::ServerConfig, TlsError> {
        let mut cfg = rustls::ServerConfig::builder_with_provider(crypto_provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.key.clone_key())?;
        cfg.alpn_protocols = vec![AUDIO_ALPN.to_vec()];
        Ok(cfg)
    }
}

fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)?.write_all(data)
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem_err = |e: rustls::pki_types::pem::Error| TlsError::Pem {
        what: "certificate",
        path: path.display().to_string(),
        detail: e.to_string(),
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(pem_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_err)?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.display().to_string()));
    }
    Ok(certs)
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::with_capacity(der.len().div_ceil(3) * 4);
    for chunk in der.chunks(3) {
        let n = chunk.len();
        let v = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= n {
                b64.push(char::from(B64[((v >> (18 - 6 * i)) & 63) as usize]));
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// How a client decides to trust the media server's certificate.
#[derive(Clone, Debug)]
pub enum ServerTrust {
    /// Accept only a leaf certificate whose SHA-256 fingerprint is in the list
    /// (host name and validity dates are not checked; the handshake signature is).
    Pinned(Vec<CertFingerprint>),
    /// Verify the chain against these CA certificates (WebPKI rules, host name checked).
    Roots(Vec<CertificateDer<'static>>),
}

impl ServerTrust {
    /// Pin one fingerprint.
    pub fn pinned(fp: CertFingerprint) -> Self {
        ServerTrust::Pinned(vec![fp])
    }

    /// Pin every certificate found in a PEM file (e.g. a development certificate).
    pub fn pinned_cert_file(path: impl AsRef<Path>) -> Result<Self, TlsError> {
        let certs = load_certs(path.as_ref())?;
        Ok(ServerTrust::Pinned(
            certs.iter().map(|c| CertFingerprint::of(c)).collect(),
        ))
    }

    /// Trust the CA certificates in a PEM file.
    pub fn ca_file(path: impl AsRef<Path>) -> Result<Self, TlsError> {
        Ok(ServerTrust::Roots(load_certs(path.as_ref())?))
    }

    /// The rustls client configuration (TLS 1.3, ALPN [`AUDIO_ALPN`]).
    pub fn rustls_client_config(&self) -> Result<rustls::ClientConfig, TlsError> {
        let provider = crypto_provider();
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?;
        let mut cfg = match self {
            ServerTrust::Pinned(fps) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(PinnedCertVerifier {
                    fingerprints: fps.clone(),
                    algorithms: provider.signature_verification_algorithms,
                }))
                .with_no_client_auth(),
            ServerTrust::Roots(roots) => {
                let mut store = rustls::RootCertStore::empty();
                for r in roots {
                    store.add(r.clone())?;
                }
                builder.with_root_certificates(store).with_no_client_auth()
            }
        };
        cfg.alpn_protocols = vec![AUDIO_ALPN.to_vec()];
        Ok(cfg)
    }
}

/// rustls verifier accepting a server whose leaf certificate has a pinned SHA-256
/// fingerprint. Handshake signatures are still verified against that certificate,
/// so the server must hold the matching private key.
#[derive(Debug)]
pub struct PinnedCertVerifier {
    fingerprints: Vec<CertFingerprint>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl PinnedCertVerifier {
    /// A verifier for these fingerprints using the crate's crypto provider.
    pub fn new(fingerprints: Vec<CertFingerprint>) -> Self {
        PinnedCertVerifier {
            fingerprints,
            algorithms: crypto_provider().signature_verification_algorithms,
        }
    }
}

impl ServerCertVerifier for PinnedCertVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let fp = CertFingerprint::of(end_entity);
        if self.fingerprints.contains(&fp) {
            Ok(ServerCertVerified::assertion())
        } else {
            tracing::warn!(%fp, "server certificate fingerprint is not pinned");
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_format_and_parse() {
        let fp = CertFingerprint::of(b"hello");
        let s = fp.to_string();
        assert_eq!(s.len(), 32 * 3 - 1);
        assert_eq!(&s[..8], "2C:F2:4D");
        assert_eq!(s.parse::<CertFingerprint>().unwrap(), fp);
        assert_eq!(
            s.replace(':', "")
                .to_lowercase()
                .parse::<CertFingerprint>()
                .unwrap(),
            fp
        );
        assert!("12:34".parse::<CertFingerprint>().is_err());
        assert!("zz".repeat(32).parse::<CertFingerprint>().is_err());
    }

    #[test]
    fn dev_cert_pem_round_trip() {
        let id = ServerIdentity::self_signed(&["localhost", "127.0.0.1"]).unwrap();
        let dir = std::env::temp_dir().join(format!("transport-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
        id.write_pem_files(&c, &k).unwrap();
        let loaded = ServerIdentity::from_pem_files(&c, &k).unwrap();
        assert_eq!(loaded.fingerprint(), id.fingerprint());
        loaded.rustls_server_config().unwrap();
        let trust = ServerTrust::pinned_cert_file(&c).unwrap();
        assert!(matches!(&trust, ServerTrust::Pinned(v) if v == &[id.fingerprint()]));
        trust.rustls_client_config().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn pem_encoding_matches_rcgen() {
        let ck = rcgen::generate_simple_self_signed(vec!["a.example".to_owned()]).unwrap();
        assert_eq!(
            pem_encode("CERTIFICATE", ck.cert.der()).trim(),
            ck.cert.pem().trim()
        );
    }
}
