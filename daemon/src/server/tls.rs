//! TLS for the TCP listener: rustls with the ring provider, TLS 1.3 only, and optional
//! client-certificate authentication against a CA bundle (for tills that carry a certificate).

use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use toml::Spanned;

use crate::config::{Config, ConfigError, TlsConfig};

/// Builds the rustls server config; every problem names the config field at fault.
pub fn server_config(
    config: &Config,
    tls: &TlsConfig,
) -> Result<Arc<rustls::ServerConfig>, ConfigError> {
    let located = |file: &Spanned<std::path::PathBuf>, field: &str, message: String| {
        config.error_at(file.span(), field, message)
    };
    let certs = CertificateDer::pem_file_iter(tls.cert_file.get_ref())
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            located(
                &tls.cert_file,
                "server.tls.cert_file",
                format!("cannot read PEM certificates: {e}"),
            )
        })?;
    if certs.is_empty() {
        return Err(located(
            &tls.cert_file,
            "server.tls.cert_file",
            "holds no PEM certificate".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(tls.key_file.get_ref()).map_err(|e| {
        located(
            &tls.key_file,
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
            let cas = CertificateDer::pem_file_iter(ca_file.get_ref())
                .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
                .map_err(|e| {
                    located(ca_file, field, format!("cannot read PEM certificates: {e}"))
                })?;
            for ca in cas {
                roots.add(ca).map_err(|e| {
                    located(ca_file, field, format!("not a usable CA certificate: {e}"))
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| {
                    located(
                        ca_file,
                        field,
                        format!("cannot verify clients with it: {e}"),
                    )
                })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut server = builder.with_single_cert(certs, key).map_err(|e| {
        located(
            &tls.key_file,
            "server.tls.key_file",
            format!("does not match the certificate or is unusable: {e}"),
        )
    })?;
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(server))
}
