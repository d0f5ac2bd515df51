//! The host's custody of merchants' keys. Plugins name a key; the key's bytes never leave
//! this module. Keys are loaded once at start from `[merchants.providers.<p>.keys]`, looked
//! up by (merchant, provider, name), and zeroized when dropped.
//!
//! Algorithms: RSA PKCS#1 v1.5 SHA-256 sign/verify, ECDSA P-256 SHA-256 sign/verify (ring);
//! HMAC-SHA256 and AES-GCM (ring); RSA-OAEP with SHA-1 or SHA-256, decryption with a private
//! key and encryption with a public one (the `rsa` crate, since ring has no RSA
//! encryption); Apple Pay `EC_v1` token decryption with a P-256 private key (`ec_v1.rs`).
//! EC private keys are read from PKCS#8 or SEC1 (`BEGIN EC PRIVATE KEY`, as Apple's
//! instructions make them).

use std::collections::BTreeMap;
use std::fmt;

use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair, UnparsedPublicKey};
use zeroize::Zeroizing;

use super::settings::KeySetting;
use crate::settings::FieldError;
use crate::settings::KeySource;

/// What a key can do, by what it is.
enum KeyMaterial {
    Rsa {
        signing: RsaKeyPair,
        decrypting: Box<rsa::RsaPrivateKey>,
    },
    RsaPublic(Vec<u8>),
    Ecdsa {
        signing: EcdsaKeyPair,
        /// The same key for ECDH (`EC_v1`); zeroized on drop.
        agreement: Box<p256::SecretKey>,
    },
    EcdsaPublic(Vec<u8>),
    /// HMAC and AES keys: raw bytes.
    Secret(Zeroizing<Vec<u8>>),
}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key bytes.
        let kind = match self {
            KeyMaterial::Rsa { .. } => "rsa private key",
            KeyMaterial::RsaPublic(_) => "rsa public key",
            KeyMaterial::Ecdsa { .. } => "ecdsa p-256 private key",
            KeyMaterial::EcdsaPublic(_) => "ecdsa p-256 public key",
            KeyMaterial::Secret(_) => "secret",
        };
        f.write_str(kind)
    }
}

/// Signature algorithms a plugin may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureAlgorithm {
    RsaPkcs1Sha256,
    EcdsaP256Sha256,
}

/// Decryption a plugin may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cipher {
    AesGcm,
    RsaOaepSha1,
    RsaOaepSha256,
}

/// Why a key operation failed (what the plugin is told).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    UnknownKey(String),
    Unsupported(String),
    Failed(String),
}

/// Names one key: the merchant and provider a call is for, and the name the plugin gave.
#[derive(Debug, Clone, Copy)]
pub struct KeyRef<'a> {
    pub merchant: &'a str,
    pub provider: &'a str,
    pub name: &'a str,
}

/// Every merchant's keys, by (merchant id, provider, key name).
#[derive(Debug, Default)]
pub struct KeyStore {
    keys: BTreeMap<(String, String, String), KeyMaterial>,
}

impl KeyStore {
    /// Loads and parses every key the merchants name. A key that cannot be read or parsed
    /// is an error naming its config field.
    pub fn load(settings: &[KeySetting]) -> Result<KeyStore, FieldError> {
        let mut keys = BTreeMap::new();
        for key in settings {
            let error = |message: String| FieldError::new(key.field.clone(), message);
            let source = KeySource::parse(&key.source).map_err(error)?;
            let bytes = source.read("key").map_err(error)?;
            let material = parse_material(bytes).map_err(error)?;
            keys.insert(
                (key.merchant.clone(), key.provider.clone(), key.name.clone()),
                material,
            );
        }
        Ok(KeyStore { keys })
    }

    fn get(&self, key: KeyRef<'_>) -> Result<&KeyMaterial, KeyError> {
        self.keys
            .get(&(
                key.merchant.to_owned(),
                key.provider.to_owned(),
                key.name.to_owned(),
            ))
            .ok_or_else(|| KeyError::UnknownKey(key.name.to_owned()))
    }

    pub fn sign(
        &self,
        key: KeyRef<'_>,
        algorithm: SignatureAlgorithm,
        data: &[u8],
    ) -> Result<Vec<u8>, KeyError> {
        let rng = SystemRandom::new();
        match (self.get(key)?, algorithm) {
            (KeyMaterial::Rsa { signing, .. }, SignatureAlgorithm::RsaPkcs1Sha256) => {
                let mut signature = vec![0u8; signing.public().modulus_len()];
                signing
                    .sign(&signature::RSA_PKCS1_SHA256, &rng, data, &mut signature)
                    .map_err(|_| KeyError::Failed("RSA signing failed".into()))?;
                Ok(signature)
            }
            (KeyMaterial::Ecdsa { signing, .. }, SignatureAlgorithm::EcdsaP256Sha256) => signing
                .sign(&rng, data)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| KeyError::Failed("ECDSA signing failed".into())),
            (material, algorithm) => Err(KeyError::Unsupported(format!(
                "key {} is a {material:?}; it cannot sign with {algorithm:?}",
                key.name
            ))),
        }
    }

    pub fn verify(
        &self,
        key: KeyRef<'_>,
        algorithm: SignatureAlgorithm,
        data: &[u8],
        signature_bytes: &[u8],
    ) -> Result<bool, KeyError> {
        let material = self.get(key)?;
        let (public, verification): (&[u8], &dyn signature::VerificationAlgorithm) =
            match (material, algorithm) {
                (KeyMaterial::Rsa { signing, .. }, SignatureAlgorithm::RsaPkcs1Sha256) => (
                    signing.public().as_ref(),
                    &signature::RSA_PKCS1_2048_8192_SHA256,
                ),
                (KeyMaterial::RsaPublic(key), SignatureAlgorithm::RsaPkcs1Sha256) => {
                    (key, &signature::RSA_PKCS1_2048_8192_SHA256)
                }
                (KeyMaterial::Ecdsa { signing, .. }, SignatureAlgorithm::EcdsaP256Sha256) => (
                    signing.public_key().as_ref(),
                    &signature::ECDSA_P256_SHA256_ASN1,
                ),
                (KeyMaterial::EcdsaPublic(key), SignatureAlgorithm::EcdsaP256Sha256) => {
                    (key, &signature::ECDSA_P256_SHA256_ASN1)
                }
                (material, algorithm) => {
                    return Err(KeyError::Unsupported(format!(
                        "key {} is a {material:?}; it cannot verify {algorithm:?}",
                        key.name
                    )));
                }
            };
        Ok(UnparsedPublicKey::new(verification, public)
            .verify(data, signature_bytes)
            .is_ok())
    }

    pub fn hmac_sha256(&self, key: KeyRef<'_>, data: &[u8]) -> Result<Vec<u8>, KeyError> {
        match self.get(key)? {
            KeyMaterial::Secret(secret) => {
                let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
                Ok(ring::hmac::sign(&key, data).as_ref().to_vec())
            }
            material => Err(KeyError::Unsupported(format!(
                "key {} is a {material:?}, not an HMAC secret",
                key.name
            ))),
        }
    }

    pub fn decrypt(
        &self,
        key: KeyRef<'_>,
        cipher: Cipher,
        nonce: &[u8],
        aad: &[u8],
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, KeyError> {
        match (self.get(key)?, cipher) {
            (KeyMaterial::Secret(secret), Cipher::AesGcm) => {
                aes_gcm_open(secret, nonce, aad, ciphertext)
            }
            (KeyMaterial::Rsa { decrypting, .. }, Cipher::RsaOaepSha1) => decrypting
                .decrypt(rsa::Oaep::new::<sha1::Sha1>(), ciphertext)
                .map_err(|_| KeyError::Failed("RSA-OAEP decryption failed".into())),
            (KeyMaterial::Rsa { decrypting, .. }, Cipher::RsaOaepSha256) => decrypting
                .decrypt(rsa::Oaep::new::<sha2::Sha256>(), ciphertext)
                .map_err(|_| KeyError::Failed("RSA-OAEP decryption failed".into())),
            (material, cipher) => Err(KeyError::Unsupported(format!(
                "key {} is a {material:?}; it cannot decrypt {cipher:?}",
                key.name
            ))),
        }
    }

    /// RSA-OAEP encryption with a public key (or a private key's public half): the
    /// sensitive fields some providers take sealed under their platform key.
    /// RSA-OAEP with a provider's public key, its padding drawn from `rng` (the operating
    /// system's in production, the plugin kit's seeded one when replaying).
    pub fn encrypt(
        &self,
        key: KeyRef<'_>,
        cipher: Cipher,
        plaintext: &[u8],
        rng: &mut dyn rsa::rand_core::CryptoRngCore,
    ) -> Result<Vec<u8>, KeyError> {
        use rsa::pkcs1::DecodeRsaPublicKey;
        let public = match self.get(key)? {
            KeyMaterial::RsaPublic(der) => rsa::RsaPublicKey::from_pkcs1_der(der)
                .map_err(|_| KeyError::Failed("unusable RSA public key".into()))?,
            KeyMaterial::Rsa { decrypting, .. } => decrypting.to_public_key(),
            material => {
                return Err(KeyError::Unsupported(format!(
                    "key {} is a {material:?}; it cannot encrypt {cipher:?}",
                    key.name
                )));
            }
        };
        let mut rng = rng;
        let sealed = match cipher {
            Cipher::RsaOaepSha1 => {
                public.encrypt(&mut rng, rsa::Oaep::new::<sha1::Sha1>(), plaintext)
            }
            Cipher::RsaOaepSha256 => {
                public.encrypt(&mut rng, rsa::Oaep::new::<sha2::Sha256>(), plaintext)
            }
            Cipher::AesGcm => {
                return Err(KeyError::Unsupported(
                    "the host encrypts with RSA-OAEP only".into(),
                ));
            }
        };
        sealed.map_err(|e| KeyError::Failed(format!("RSA-OAEP encryption failed: {e}")))
    }

    /// Decrypts an Apple Pay `EC_v1` token's `data` with the merchant's payment processing
    /// key (`ec_v1.rs`): the plaintext only.
    pub fn decrypt_apple_pay_token(
        &self,
        key: KeyRef<'_>,
        ephemeral_public_key: &[u8],
        merchant_id_hash: &[u8],
        data: &[u8],
    ) -> Result<Vec<u8>, KeyError> {
        match self.get(key)? {
            KeyMaterial::Ecdsa { agreement, .. } => {
                super::ec_v1::decrypt(agreement, ephemeral_public_key, merchant_id_hash, data)
            }
            material => Err(KeyError::Unsupported(format!(
                "key {} is a {material:?}, not a P-256 payment processing key",
                key.name
            ))),
        }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

fn aes_gcm_open(
    key: &[u8],
    nonce: &[u8],
    aad: &[u8],
    ciphertext: &[u8],
) -> Result<Vec<u8>, KeyError> {
    use ring::aead;
    let algorithm = match key.len() {
        16 => &aead::AES_128_GCM,
        32 => &aead::AES_256_GCM,
        n => {
            return Err(KeyError::Unsupported(format!(
                "AES-GCM keys are 16 or 32 bytes, this one is {n}"
            )));
        }
    };
    let nonce = aead::Nonce::try_assume_unique_for_key(nonce)
        .map_err(|_| KeyError::Failed("AES-GCM nonces are 12 bytes".into()))?;
    let key = aead::LessSafeKey::new(
        aead::UnboundKey::new(algorithm, key)
            .map_err(|_| KeyError::Failed("bad AES key".into()))?,
    );
    let mut buffer = ciphertext.to_vec();
    let plain = key
        .open_in_place(nonce, aead::Aad::from(aad), &mut buffer)
        .map_err(|_| KeyError::Failed("AES-GCM authentication failed".into()))?;
    Ok(plain.to_vec())
}

/// PEM keys by their label; anything else is a raw secret (trailing whitespace trimmed).
fn parse_material(bytes: Zeroizing<Vec<u8>>) -> Result<KeyMaterial, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{PrivateKeyDer, SubjectPublicKeyInfoDer};

    let is_pem = bytes.trim_ascii_start().starts_with(b"-----BEGIN ");
    if !is_pem {
        let trimmed = bytes.trim_ascii_end().to_vec();
        if trimmed.is_empty() {
            return Err("the key is empty".into());
        }
        return Ok(KeyMaterial::Secret(Zeroizing::new(trimmed)));
    }
    if let Ok(private) = PrivateKeyDer::from_pem_slice(&bytes) {
        return match private {
            PrivateKeyDer::Pkcs8(der) => parse_pkcs8(der.secret_pkcs8_der()),
            PrivateKeyDer::Pkcs1(der) => {
                use rsa::pkcs1::DecodeRsaPrivateKey;
                let der = der.secret_pkcs1_der();
                let signing =
                    RsaKeyPair::from_der(der).map_err(|e| format!("bad PKCS#1 RSA key: {e}"))?;
                let decrypting = rsa::RsaPrivateKey::from_pkcs1_der(der)
                    .map_err(|e| format!("RSA key unusable for decryption: {e}"))?;
                Ok(KeyMaterial::Rsa {
                    signing,
                    decrypting: Box::new(decrypting),
                })
            }
            PrivateKeyDer::Sec1(der) => {
                let secret = p256::SecretKey::from_sec1_der(der.secret_sec1_der())
                    .map_err(|_| "a SEC1 EC key that is not P-256".to_string())?;
                ecdsa_material(secret)
            }
            _ => Err(
                "unsupported private key format; use PKCS#8 (BEGIN PRIVATE KEY), PKCS#1 or SEC1"
                    .into(),
            ),
        };
    }
    let public = SubjectPublicKeyInfoDer::from_pem_slice(&bytes).map_err(|_| {
        "not a PEM private key (PKCS#8 or PKCS#1) or public key (BEGIN PUBLIC KEY)".to_string()
    })?;
    parse_spki(public.as_ref())
}

fn parse_pkcs8(der: &[u8]) -> Result<KeyMaterial, String> {
    if let Ok(signing) = RsaKeyPair::from_pkcs8(der) {
        let decrypting = rsa::RsaPrivateKey::from_pkcs8_der(der)
            .map_err(|e| format!("RSA key unusable for decryption: {e}"))?;
        return Ok(KeyMaterial::Rsa {
            signing,
            decrypting: Box::new(decrypting),
        });
    }
    use p256::pkcs8::DecodePrivateKey as _;
    let secret = p256::SecretKey::from_pkcs8_der(der)
        .map_err(|_| "a PKCS#8 key that is neither RSA (2048+ bits) nor EC P-256".to_string())?;
    ecdsa_material(secret)
}

/// A P-256 private key, for ECDSA (ring, which reads PKCS#8 only) and ECDH (p256).
fn ecdsa_material(secret: p256::SecretKey) -> Result<KeyMaterial, String> {
    use p256::pkcs8::EncodePrivateKey as _;
    let pkcs8 = secret
        .to_pkcs8_der()
        .map_err(|e| format!("cannot re-encode the EC key: {e}"))?;
    let signing = EcdsaKeyPair::from_pkcs8(
        &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        pkcs8.as_bytes(),
        &SystemRandom::new(),
    )
    .map_err(|_| "an EC P-256 key ring cannot use".to_string())?;
    Ok(KeyMaterial::Ecdsa {
        signing,
        agreement: Box::new(secret),
    })
}

/// RSA and EC public keys from a SubjectPublicKeyInfo.
fn parse_spki(der: &[u8]) -> Result<KeyMaterial, String> {
    use rsa::pkcs8::der::Decode;
    const RSA: &str = "1.2.840.113549.1.1.1";
    const EC: &str = "1.2.840.10045.2.1";
    let info = spki::SubjectPublicKeyInfoRef::from_der(der)
        .map_err(|e| format!("bad SubjectPublicKeyInfo: {e}"))?;
    let key = info.subject_public_key.raw_bytes().to_vec();
    match info.algorithm.oid.to_string().as_str() {
        RSA => Ok(KeyMaterial::RsaPublic(key)),
        EC => Ok(KeyMaterial::EcdsaPublic(key)),
        other => Err(format!("unsupported public key algorithm {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD as B64;
    use rsa::rand_core::OsRng;

    fn vector(path: &str) -> serde_json::Value {
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/vectors")
            .join(path);
        serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap()
    }

    fn store(entries: &[(&str, &str, &str, &[u8])]) -> KeyStore {
        let keys = entries
            .iter()
            .map(|(m, p, n, bytes)| {
                let material = parse_material(Zeroizing::new(bytes.to_vec())).unwrap();
                ((m.to_string(), p.to_string(), n.to_string()), material)
            })
            .collect();
        KeyStore { keys }
    }

    #[test]
    fn rsa_signing_matches_the_wechat_pay_vector() {
        let v = vector("wechatpay/sign_sha256withrsa.json");
        let pem = v["private_key_pem"].as_str().unwrap();
        let keys = store(&[("m_a", "wechatpay", "merchant_private_key", pem.as_bytes())]);
        let message = v["message"].as_str().unwrap().as_bytes();
        let signature = keys
            .sign(
                KeyRef {
                    merchant: "m_a",
                    provider: "wechatpay",
                    name: "merchant_private_key",
                },
                SignatureAlgorithm::RsaPkcs1Sha256,
                message,
            )
            .unwrap();
        assert_eq!(
            B64.encode(&signature),
            v["signature_base64"].as_str().unwrap()
        );
        let verified = keys.verify(
            KeyRef {
                merchant: "m_a",
                provider: "wechatpay",
                name: "merchant_private_key",
            },
            SignatureAlgorithm::RsaPkcs1Sha256,
            message,
            &signature,
        );
        assert_eq!(verified, Ok(true));
        assert_eq!(
            keys.verify(
                KeyRef {
                    merchant: "m_a",
                    provider: "wechatpay",
                    name: "merchant_private_key"
                },
                SignatureAlgorithm::RsaPkcs1Sha256,
                b"other",
                &signature
            ),
            Ok(false)
        );
    }

    #[test]
    fn aes_gcm_matches_the_wechat_pay_vector_with_a_16_byte_key() {
        let v = vector("wechatpay/aead.json");
        let keys = store(&[(
            "m_a",
            "wechatpay",
            "api_v3_key",
            v["key"].as_str().unwrap().as_bytes(),
        )]);
        let plain = keys
            .decrypt(
                KeyRef {
                    merchant: "m_a",
                    provider: "wechatpay",
                    name: "api_v3_key",
                },
                Cipher::AesGcm,
                v["nonce"].as_str().unwrap().as_bytes(),
                v["associated_data"].as_str().unwrap().as_bytes(),
                &B64.decode(v["ciphertext_base64"].as_str().unwrap())
                    .unwrap(),
            )
            .unwrap();
        assert_eq!(plain, v["plaintext"].as_str().unwrap().as_bytes());
        let tampered = keys.decrypt(
            KeyRef {
                merchant: "m_a",
                provider: "wechatpay",
                name: "api_v3_key",
            },
            Cipher::AesGcm,
            v["nonce"].as_str().unwrap().as_bytes(),
            b"other aad",
            &B64.decode(v["ciphertext_base64"].as_str().unwrap())
                .unwrap(),
        );
        assert!(matches!(tampered, Err(KeyError::Failed(_))));
    }

    fn applepay_file(name: &str) -> Vec<u8> {
        std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../tests/vectors/applepay")
                .join(name),
        )
        .unwrap()
    }

    fn key(name: &str) -> KeyRef<'_> {
        KeyRef {
            merchant: "m_a",
            provider: "p",
            name,
        }
    }

    #[test]
    fn a_sec1_ec_key_decrypts_the_published_apple_pay_token_and_signs() {
        // Apple's processing keys come as SEC1 (`BEGIN EC PRIVATE KEY`).
        let pem = applepay_file("merchant_private_key.pem");
        assert!(pem.starts_with(b"-----BEGIN EC PRIVATE KEY-----"));
        let keys = store(&[
            ("m_a", "p", "processing", &pem),
            ("m_a", "p", "secret", b"s3cret"),
        ]);
        let token: serde_json::Value =
            serde_json::from_slice(&applepay_file("token.json")).unwrap();
        let field = |pointer: &str| B64.decode(token.pointer(pointer).unwrap().as_str().unwrap());
        let ephemeral = field("/header/ephemeralPublicKey").unwrap();
        let data = field("/data").unwrap();
        let merchant_id_hash =
            ring::digest::digest(&ring::digest::SHA256, b"merchant.test.spreedly.123merchant");
        let plain = keys
            .decrypt_apple_pay_token(
                key("processing"),
                &ephemeral,
                merchant_id_hash.as_ref(),
                &data,
            )
            .unwrap();
        let payment: serde_json::Value = serde_json::from_slice(&plain).unwrap();
        assert_eq!(
            payment["applicationPrimaryAccountNumber"],
            "5353756319181169"
        );
        // Another key kind cannot, and the same key still signs ECDSA.
        assert!(matches!(
            keys.decrypt_apple_pay_token(
                key("secret"),
                &ephemeral,
                merchant_id_hash.as_ref(),
                &data
            ),
            Err(KeyError::Unsupported(_))
        ));
        let signature = keys
            .sign(key("processing"), SignatureAlgorithm::EcdsaP256Sha256, b"d")
            .unwrap();
        assert_eq!(
            keys.verify(
                key("processing"),
                SignatureAlgorithm::EcdsaP256Sha256,
                b"d",
                &signature
            ),
            Ok(true)
        );
    }

    #[test]
    fn rsa_oaep_encryption_with_a_public_key_opens_with_its_private_key() {
        let private = vector("wechatpay/sign_sha256withrsa.json")["private_key_pem"]
            .as_str()
            .unwrap()
            .to_owned();
        let public = {
            use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey, LineEnding};
            rsa::RsaPrivateKey::from_pkcs8_pem(&private)
                .unwrap()
                .to_public_key()
                .to_public_key_pem(LineEnding::LF)
                .unwrap()
        };
        let keys = store(&[
            ("m_a", "p", "platform_public", public.as_bytes()),
            ("m_a", "p", "private", private.as_bytes()),
            ("m_a", "p", "secret", b"s3cret"),
        ]);
        for cipher in [Cipher::RsaOaepSha1, Cipher::RsaOaepSha256] {
            let sealed = keys
                .encrypt(
                    key("platform_public"),
                    cipher,
                    "张三 110101".as_bytes(),
                    &mut OsRng,
                )
                .unwrap();
            assert_eq!(sealed.len(), 256, "2048-bit RSA");
            let opened = keys
                .decrypt(key("private"), cipher, &[], &[], &sealed)
                .unwrap();
            assert_eq!(opened, "张三 110101".as_bytes());
            // Random padding: the same plaintext seals differently each time.
            assert_ne!(
                keys.encrypt(key("platform_public"), cipher, b"x", &mut OsRng)
                    .unwrap(),
                keys.encrypt(key("platform_public"), cipher, b"x", &mut OsRng)
                    .unwrap()
            );
        }
        assert!(matches!(
            keys.encrypt(key("platform_public"), Cipher::AesGcm, b"x", &mut OsRng),
            Err(KeyError::Unsupported(_))
        ));
        assert!(matches!(
            keys.encrypt(key("secret"), Cipher::RsaOaepSha256, b"x", &mut OsRng),
            Err(KeyError::Unsupported(_))
        ));
        // More than OAEP can carry in one block (256 - 2 * 32 - 2 bytes with SHA-256).
        assert!(matches!(
            keys.encrypt(
                key("platform_public"),
                Cipher::RsaOaepSha256,
                &[0u8; 200],
                &mut OsRng
            ),
            Err(KeyError::Failed(_))
        ));
    }

    #[test]
    fn keys_are_scoped_to_merchant_and_provider() {
        let keys = store(&[
            ("m_a", "mock", "secret", b"aaa"),
            ("m_b", "mock", "other", b"bbb"),
        ]);
        assert!(
            keys.hmac_sha256(
                KeyRef {
                    merchant: "m_a",
                    provider: "mock",
                    name: "secret"
                },
                b"x"
            )
            .is_ok()
        );
        for (merchant, provider, name) in [
            ("m_a", "mock", "other"),
            ("m_b", "mock", "secret"),
            ("m_a", "alipay", "secret"),
        ] {
            assert_eq!(
                keys.hmac_sha256(
                    KeyRef {
                        merchant,
                        provider,
                        name
                    },
                    b"x"
                ),
                Err(KeyError::UnknownKey(name.to_string()))
            );
        }
    }

    #[test]
    fn ecdsa_keys_sign_and_verify_and_misuse_is_refused() {
        let pair = rcgen::KeyPair::generate().unwrap();
        let keys = store(&[
            ("m_a", "p", "ec", pair.serialize_pem().as_bytes()),
            ("m_a", "p", "ec_public", pair.public_key_pem().as_bytes()),
            ("m_a", "p", "secret", b"s3cret\n"),
        ]);
        let signature = keys
            .sign(
                KeyRef {
                    merchant: "m_a",
                    provider: "p",
                    name: "ec",
                },
                SignatureAlgorithm::EcdsaP256Sha256,
                b"data",
            )
            .unwrap();
        assert_eq!(
            keys.verify(
                KeyRef {
                    merchant: "m_a",
                    provider: "p",
                    name: "ec_public"
                },
                SignatureAlgorithm::EcdsaP256Sha256,
                b"data",
                &signature
            ),
            Ok(true)
        );
        assert!(matches!(
            keys.sign(
                KeyRef {
                    merchant: "m_a",
                    provider: "p",
                    name: "ec"
                },
                SignatureAlgorithm::RsaPkcs1Sha256,
                b"d"
            ),
            Err(KeyError::Unsupported(_))
        ));
        assert!(matches!(
            keys.sign(
                KeyRef {
                    merchant: "m_a",
                    provider: "p",
                    name: "secret"
                },
                SignatureAlgorithm::EcdsaP256Sha256,
                b"d"
            ),
            Err(KeyError::Unsupported(_))
        ));
        assert!(matches!(
            keys.hmac_sha256(
                KeyRef {
                    merchant: "m_a",
                    provider: "p",
                    name: "ec"
                },
                b"d"
            ),
            Err(KeyError::Unsupported(_))
        ));
        // A trailing newline in a secret file is not part of the secret.
        let expected = ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"s3cret"),
            b"d",
        );
        assert_eq!(
            keys.hmac_sha256(
                KeyRef {
                    merchant: "m_a",
                    provider: "p",
                    name: "secret"
                },
                b"d"
            )
            .unwrap(),
            expected.as_ref()
        );
    }

    #[test]
    fn malformed_keys_are_refused_with_a_reason() {
        for bad in [
            &b""[..],
            b"   \n",
            b"-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n",
            b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
        ] {
            assert!(
                parse_material(Zeroizing::new(bad.to_vec())).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn debug_output_never_shows_key_bytes() {
        let material = parse_material(Zeroizing::new(b"top-secret-value".to_vec())).unwrap();
        assert!(!format!("{material:?}").contains("top-secret"));
    }
}
