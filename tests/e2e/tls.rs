//! TLS 1.3 on the TCP listener, and client-certificate authentication.

use std::path::Path;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

/// A CA, a server certificate for `localhost` and a client certificate, all written as PEM.
struct Pki {
    ca_pem: String,
    client_cert: CertificateDer<'static>,
    client_key: PrivateKeyDer<'static>,
}

fn make_pki(dir: &Path) -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();

    let server_key = KeyPair::generate().unwrap();
    let mut server_params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server_params.signed_by(&server_key, &ca).unwrap();
    std::fs::write(dir.join("server.crt"), server_cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), server_key.serialize_pem()).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();

    let client_key = KeyPair::generate().unwrap();
    let mut client_params = CertificateParams::new(vec!["till-07".to_owned()]).unwrap();
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client_params.signed_by(&client_key, &ca).unwrap();
    Pki {
        ca_pem: ca.pem(),
        client_cert: client_cert.der().clone(),
        client_key: PrivateKeyDer::try_from(client_key.serialize_der()).unwrap(),
    }
}

fn tls_config(dir: &Path, require_client_certs: bool) -> String {
    let client_ca = if require_client_certs {
        format!("client_ca_file = \"{}\"\n", dir.join("ca.pem").display())
    } else {
        String::new()
    };
    format!(
        "{}\n[server.tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n{client_ca}",
        default_config_text(),
        dir.join("server.crt").display(),
        dir.join("server.key").display(),
    )
}

fn client(
    pki: &Pki,
    versions: &[&'static rustls::SupportedProtocolVersion],
    with_cert: bool,
) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    let ca = rustls::pki_types::pem::PemObject::from_pem_slice(pki.ca_pem.as_bytes()).unwrap();
    roots.add(ca).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots);
    let config = if with_cert {
        builder
            .with_client_auth_cert(vec![pki.client_cert.clone()], pki.client_key.clone_key())
            .unwrap()
    } else {
        builder.with_no_client_auth()
    };
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// GET /v1/merchants/m_demo over TLS; the response head, or the error.
async fn get_over_tls(
    daemon: &Daemon,
    connector: tokio_rustls::TlsConnector,
) -> std::io::Result<String> {
    let tcp = tokio::net::TcpStream::connect(daemon.tcp_addr()).await?;
    let mut tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await?;
    tls.write_all(format!("GET /v1/merchants/m_demo HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {ERP}\r\nconnection: close\r\n\r\n").as_bytes()).await?;
    let mut response = String::new();
    tls.read_to_string(&mut response).await?;
    if response.is_empty() {
        return Err(std::io::Error::other(
            "connection closed without a response",
        ));
    }
    Ok(response)
}

#[tokio::test]
async fn tls13_serves_and_older_versions_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let daemon = Daemon::with_config(tls_config(dir.path(), false));
    assert!(
        daemon.base_url.starts_with("https://"),
        "{}",
        daemon.base_url
    );

    let response = get_over_tls(&daemon, client(&pki, &[&rustls::version::TLS13], false))
        .await
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("Demo Coffee"));

    let tls12 = get_over_tls(&daemon, client(&pki, &[&rustls::version::TLS12], false)).await;
    assert!(tls12.is_err(), "TLS 1.2 must be refused: {tls12:?}");

    // Plain HTTP on the TLS port gets nothing useful.
    let plain = daemon
        .raw(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await;
    assert!(!plain.contains("\"ok\""), "{plain}");
}

#[tokio::test]
async fn client_certificates_are_required_when_a_ca_is_configured() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let daemon = Daemon::with_config(tls_config(dir.path(), true));

    let with_cert = get_over_tls(&daemon, client(&pki, &[&rustls::version::TLS13], true))
        .await
        .unwrap();
    assert!(with_cert.starts_with("HTTP/1.1 200"), "{with_cert}");

    let without = get_over_tls(&daemon, client(&pki, &[&rustls::version::TLS13], false)).await;
    assert!(
        without.is_err(),
        "a client without a certificate must be refused: {without:?}"
    );
}
