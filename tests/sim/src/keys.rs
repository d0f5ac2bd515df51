//! The simulator's keys (the sandbox keys under `config/sandbox-keys/`): it signs as the
//! provider and verifies what merchants send. RSA PKCS#1 v1.5 with SHA-256 throughout, as
//! Alipay's RSA2 and WeChat Pay v3 use.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey};
use rsa::signature::{SignatureEncoding, Signer, Verifier};
use rsa::{RsaPrivateKey, RsaPublicKey};
use sha2::Sha256;

pub struct Keys {
    /// Signs Alipay's responses and notifications.
    pub alipay_platform: SigningKey<Sha256>,
    /// Verifies merchants' Alipay requests (the sandbox app's public key).
    pub alipay_app: VerifyingKey<Sha256>,
    /// Signs WeChat Pay's responses and notifications.
    pub wechatpay_platform: SigningKey<Sha256>,
    /// Verifies merchants' WeChat Pay requests.
    pub wechatpay_merchant: VerifyingKey<Sha256>,
    /// The APIv3 key: AES-256-GCM of notification resources and certificate downloads.
    pub wechatpay_apiv3: Vec<u8>,
    /// The secret the card acquirer shares with merchants (HMAC-SHA256).
    pub acquirer_secret: Vec<u8>,
    /// Toy Pay's shared secret (HMAC-SHA256 of its requests and answers).
    pub toypay_secret: Vec<u8>,
    /// The WeChat Pay platform certificate (of `wechatpay_platform`'s key), for clients
    /// that verify answers by certificate serial rather than by public key id.
    pub wechatpay_certificate: PlatformCertificate,
}

/// A platform certificate as `GET /v3/certificates` hands it out.
pub struct PlatformCertificate {
    /// The PEM text.
    pub pem: String,
    /// The serial number in upper-case hex, as WeChat Pay writes it in `Wechatpay-Serial`.
    pub serial: String,
    /// Validity, unix seconds.
    pub not_before: i64,
    pub not_after: i64,
}

impl PlatformCertificate {
    fn load(path: &Path, key: &SigningKey<Sha256>) -> Result<PlatformCertificate, String> {
        let fail = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
        let pem = std::fs::read_to_string(path).map_err(|e| fail(&e))?;
        let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|e| fail(&e))?;
        let cert = block.parse_x509().map_err(|e| fail(&e))?;
        // The certificate must name the key the simulator signs with, or every client that
        // trusts it would reject every answer.
        let signer_public = rsa::RsaPublicKey::from(key.as_ref())
            .to_public_key_der()
            .map_err(|e| fail(&e))?;
        if cert.public_key().raw != signer_public.as_bytes() {
            return Err(fail(&"not a certificate of the platform private key"));
        }
        Ok(PlatformCertificate {
            serial: cert.raw_serial_as_string().replace(':', "").to_uppercase(),
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            pem,
        })
    }
}

fn private(dir: &Path, name: &str) -> Result<SigningKey<Sha256>, String> {
    let path = dir.join(name);
    let pem = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let key =
        RsaPrivateKey::from_pkcs8_pem(&pem).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(SigningKey::new(key))
}

fn public(dir: &Path, name: &str) -> Result<VerifyingKey<Sha256>, String> {
    let path = dir.join(name);
    let pem = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let key =
        RsaPublicKey::from_public_key_pem(&pem).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(VerifyingKey::new(key))
}

impl Keys {
    pub fn load(dir: &Path) -> Result<Keys, String> {
        let apiv3_path = dir.join("wechatpay_apiv3_key.txt");
        let apiv3 = std::fs::read_to_string(&apiv3_path)
            .map_err(|e| format!("{}: {e}", apiv3_path.display()))?
            .trim()
            .as_bytes()
            .to_vec();
        if !matches!(apiv3.len(), 16 | 32) {
            return Err(format!("{}: must be 16 or 32 bytes", apiv3_path.display()));
        }
        let wechatpay_platform = private(dir, "wechatpay_platform_private_key.pem")?;
        let wechatpay_certificate = PlatformCertificate::load(
            &dir.join("wechatpay_platform_cert.pem"),
            &wechatpay_platform,
        )?;
        let acquirer_path = dir.join("acquirer_secret.txt");
        let acquirer_secret = std::fs::read_to_string(&acquirer_path)
            .map_err(|e| format!("{}: {e}", acquirer_path.display()))?
            .trim()
            .as_bytes()
            .to_vec();
        let toypay_path = dir.join("toypay_secret.txt");
        let toypay_secret = std::fs::read_to_string(&toypay_path)
            .map_err(|e| format!("{}: {e}", toypay_path.display()))?
            .trim()
            .as_bytes()
            .to_vec();
        Ok(Keys {
            acquirer_secret,
            toypay_secret,
            alipay_platform: private(dir, "alipay_platform_private_key.pem")?,
            alipay_app: public(dir, "alipay_app_public_key.pem")?,
            wechatpay_platform,
            wechatpay_certificate,
            wechatpay_merchant: public(dir, "wechatpay_merchant_public_key.pem")?,
            wechatpay_apiv3: apiv3,
        })
    }
}

/// Base64 of the RSA signature of `data`.
pub fn sign(key: &SigningKey<Sha256>, data: &[u8]) -> String {
    B64.encode(key.sign(data).to_bytes())
}

/// Whether `signature_b64` is `key`'s signature of `data`.
pub fn verify(key: &VerifyingKey<Sha256>, data: &[u8], signature_b64: &str) -> bool {
    let Ok(bytes) = B64.decode(signature_b64.trim()) else {
        return false;
    };
    let Ok(signature) = Signature::try_from(bytes.as_slice()) else {
        return false;
    };
    key.verify(data, &signature).is_ok()
}

/// AES-GCM encryption (ciphertext with the 16-byte tag appended), base64: the shape of a
/// WeChat Pay notification's `resource.ciphertext`.
pub fn aes_gcm_seal(key: &[u8], nonce: &[u8; 12], aad: &[u8], plaintext: &[u8]) -> String {
    use ring::aead;
    let algorithm = if key.len() == 16 {
        &aead::AES_128_GCM
    } else {
        &aead::AES_256_GCM
    };
    let key =
        aead::LessSafeKey::new(aead::UnboundKey::new(algorithm, key).expect("checked length"));
    let mut buffer = plaintext.to_vec();
    key.seal_in_place_append_tag(
        aead::Nonce::assume_unique_for_key(*nonce),
        aead::Aad::from(aad),
        &mut buffer,
    )
    .expect("sealing into a Vec cannot fail");
    B64.encode(buffer)
}

/// A sensitive field opened: base64 of an RSA-OAEP (SHA-1) ciphertext under the platform
/// key's public half, as WeChat Pay's merchants seal them. `None` if it is not one.
pub fn rsa_oaep_sha1_open(key: &SigningKey<Sha256>, base64_text: &str) -> Option<String> {
    let sealed = B64.decode(base64_text.trim()).ok()?;
    let private: &RsaPrivateKey = key.as_ref();
    let opened = private
        .decrypt(rsa::Oaep::new::<sha1::Sha1>(), &sealed)
        .ok()?;
    String::from_utf8(opened).ok()
}

/// HMAC-SHA256 of `data` under `key`.
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    ring::hmac::sign(&key, data).as_ref().to_vec()
}

/// `n` random characters from [0-9A-Z] (nonces, trade numbers).
pub fn random_token(n: usize) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).expect("the operating system's random source");
    bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}
