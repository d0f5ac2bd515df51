//! TLS to the database. A URL with `sslmode=require` gets TLS (rustls, as the rest of the
//! daemon), and the server's certificate is always verified, its chain and its name, against
//! `[store.postgres] ca_file` or else the public web roots: stricter than libpq's `require`,
//! as its `verify-full`. Any other mode is plaintext, `prefer` (tokio-postgres' default)
//! included: no silent choice either way, for a server on the same host or a private network.

use std::path::Path;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::PgError;

/// The connector for `config`'s connections; a mode other than `require` is set to plaintext.
pub(super) fn connector(
    config: &mut tokio_postgres::Config,
    ca_file: Option<&Path>,
) -> Result<MakeRustlsConnect, PgError> {
    if config.get_ssl_mode() != SslMode::Require {
        config.ssl_mode(SslMode::Disable);
    }
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let unusable =
                |e: &dyn std::fmt::Display| PgError::Tls(format!("{}: {e}", path.display()));
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| unusable(&e))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| unusable(&e))?;
            if certs.is_empty() {
                return Err(unusable(&"no certificate in the file"));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| unusable(&e))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| PgError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(tls))
}

#[cfg(test)]
mod tests {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

    use super::super::testing::throwaway_cluster_with_tls;
    use super::super::{PgSettings, PgStore};

    /// A certificate authority and a server certificate for 127.0.0.1 signed by it: the CA's
    /// PEM, the server's certificate and key.
    fn pki() -> (String, String, String) {
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        (ca.pem(), cert.pem(), key.serialize_pem())
    }

    /// `sslmode=require`: the connection is TLS, the server's certificate checked against
    /// `ca_file`; another authority's certificate is refused, and so is a server without TLS.
    /// Without `require` the connection is plaintext even where the server offers TLS.
    #[tokio::test]
    async fn require_speaks_tls_to_a_verified_server_and_nothing_else() {
        let (ca, cert, key) = pki();
        let cluster = match throwaway_cluster_with_tls(&cert, &key).await {
            Ok(cluster) => cluster,
            Err(why) => {
                assert!(std::env::var_os("CI").is_none(), "{why}");
                eprintln!("*** SKIPPED: no throwaway PostgreSQL cluster: {why} ***");
                return;
            }
        };
        let dir = tempfile::tempdir().unwrap();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, &ca).unwrap();
        let plain = cluster.settings(&cluster.fresh_database().await);
        let tls = PgSettings {
            url: format!("{} sslmode=require", plain.url),
            ca_file: Some(ca_file.clone()),
            ..plain.clone()
        };
        let encrypted = |store: PgStore| async move {
            let client = store.client().await.unwrap();
            client
                .query_one(
                    "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                    &[],
                )
                .await
                .unwrap()
                .get::<_, bool>(0)
        };
        assert!(encrypted(PgStore::open(&tls).await.unwrap()).await);
        assert!(!encrypted(PgStore::open(&plain).await.unwrap()).await);

        // Another authority: refused, as a failure to reach the server.
        let (other_ca, _, _) = pki();
        let other = dir.path().join("other.pem");
        std::fs::write(&other, other_ca).unwrap();
        let refused = PgStore::open(&PgSettings {
            ca_file: Some(other),
            ..tls.clone()
        })
        .await
        .err()
        .expect("an unknown authority is refused");
        assert!(refused.is_unavailable(), "{refused}");
        // The public roots do not know this one either.
        assert!(
            PgStore::open(&PgSettings {
                ca_file: None,
                ..tls.clone()
            })
            .await
            .is_err()
        );
        // A file without a certificate is the setting's fault.
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let refused = PgStore::open(&PgSettings {
            ca_file: Some(empty),
            ..tls.clone()
        })
        .await
        .err()
        .expect("no certificate");
        assert!(refused.is_setting(), "{refused}");
        assert!(
            refused.to_string().starts_with("store.postgres.ca_file:"),
            "{refused}"
        );

        // A server without TLS: `require` does not fall back to plaintext.
        let bare = super::super::testing::throwaway_cluster().await.unwrap();
        let bare = bare.settings(&bare.fresh_database().await);
        let refused = PgStore::open(&PgSettings {
            url: format!("{} sslmode=require", bare.url),
            ca_file: Some(ca_file),
            ..bare
        })
        .await
        .err()
        .expect("no TLS, no connection");
        assert!(refused.to_string().contains("TLS"), "{refused}");
    }
}
