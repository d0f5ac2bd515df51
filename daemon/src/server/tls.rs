//! TLS for the TCP listener: rustls with the ring provider, TLS 1.3 only, and optional
//! client-certificate authentication against a CA bundle (for tills that carry a certificate).

use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use std::path::PathBuf;

use crate::settings::FieldError;

/// `[server.tls]`: the listener's certificate chain and key, and the CA bundle that client
/// certificates must chain to (none: no client authentication).
#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub client_ca_file: Option<PathBuf>,
}

/// Builds the rustls server config; every problem names the config field at fault.
pub fn server_config(tls: &TlsSettings) -> Result<Arc<rustls::ServerConfig>, FieldError> {
    let certs = CertificateDer::pem_file_iter(&tls.cert_file)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            FieldError::new(
                "server.tls.cert_file",
                format!("cannot read PEM certificates: {e}"),
            )
        })?;
    if certs.is_empty() {
        return Err(FieldError::new(
            "server.tls.cert_file",
            "holds no PEM certificate",
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key_file).map_err(|e| {
        FieldError::new(
            "server.tls.key_file",
            format!("cannot read a PEM private key: {e}"),
        )
    })?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("the ring provider supports TLS 1.3");
    let builder = match &tls.client_ca_file {
        None => builder.with_no_client_auth(),
        Some(ca_file) => {
            let field = "server.tls.client_ca_file";
            let mut roots = RootCertStore::empty();
            let cas = CertificateDer::pem_file_iter(ca_file)
                .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
                .map_err(|e| {
                    FieldError::new(field, format!("cannot read PEM certificates: {e}"))
                })?;
            for ca in cas {
                roots.add(ca).map_err(|e| {
                    FieldError::new(field, format!("not a usable CA certificate: {e}"))
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| {
                    FieldError::new(field, format!("cannot verify clients with it: {e}"))
                })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut server = builder.with_single_cert(certs, key).map_err(|e| {
        FieldError::new(
            "server.tls.key_file",
            format!("does not match the certificate or is unusable: {e}"),
        )
    })?;
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(server))
}
