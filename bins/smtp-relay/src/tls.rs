//! TLS for the relay: certificates from PEM files, or a self-signed one made at start-up.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest as _, Sha256};
use tokio_rustls::TlsAcceptor;

/// A certificate chain and its key.
#[derive(Debug)]
pub struct Identity {
    /// The chain, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's key.
    pub key: PrivateKeyDer<'static>,
}

impl Identity {
    /// Reads a PEM certificate chain and a PEM private key.
    ///
    /// # Errors
    /// When a file cannot be read or holds no certificate or key.
    pub fn from_pem_files(cert: &Path, key: &Path) -> anyhow::Result<Self> {
        let chain = CertificateDer::pem_file_iter(cert)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", cert.display()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", cert.display()))?;
        if chain.is_empty() {
            anyhow::bail!("{} holds no certificate", cert.display());
        }
        let key = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", key.display()))?;
        Ok(Self { chain, key })
    }

    /// A self-signed certificate for `names`.
    ///
    /// # Errors
    /// When the key or certificate cannot be generated.
    pub fn self_signed(names: Vec<String>) -> anyhow::Result<Self> {
        let certified = rcgen::generate_simple_self_signed(names)?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            certified.signing_key.serialize_der(),
        ));
        Ok(Self {
            chain: vec![certified.cert.der().clone()],
            key,
        })
    }

    /// The leaf certificate (what clients are shown).
    #[must_use]
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.chain[0]
    }

    /// SHA-256 fingerprint of the leaf certificate, as colon-separated hex.
    #[must_use]
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::digest(self.chain[0].as_ref());
        digest
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":")
    }

    /// The acceptor for this identity.
    ///
    /// # Errors
    /// When the key does not fit the certificate.
    pub fn acceptor(self) -> anyhow::Result<TlsAcceptor> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(self.chain, self.key)?;
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}
