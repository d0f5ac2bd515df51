//! Apple Pay payment token decryption (`EC_v1`), as one key operation of the host: a plugin
//! hands over the token's ephemeral public key and ciphertext and gets the plaintext back,
//! never the merchant's key, the shared secret or the derived key (Apple's "Payment Token
//! Format Reference"):
//!
//! - Z = ECDH over P-256 between the merchant's payment processing private key and the
//!   token's `header.ephemeralPublicKey` (DER SubjectPublicKeyInfo);
//! - K = SHA-256(00000001 ‖ Z ‖ 0x0D ‖ "id-aes256-GCM" ‖ "Apple" ‖ SHA-256(merchant id)), the
//!   NIST SP 800-56A single-step KDF with one round (counter 1), `AlgorithmID` its length
//!   byte and name, `PartyUInfo` "Apple", `PartyVInfo` the merchant identifier's hash;
//! - plaintext = AES-256-GCM(K, IV = 16 zero bytes, no associated data) of `data`, whose
//!   last 16 bytes are the tag.
//!
//! The 16-byte IV is why this is not ring's AES-GCM (12-byte nonces only).

use aes_gcm::aead::consts::U16;
use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::aes::Aes256;
use p256::pkcs8::DecodePublicKey;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::keystore::KeyError;

/// AES-256-GCM with Apple's 16-byte IV.
type Aes256Gcm16 = aes_gcm::AesGcm<Aes256, U16>;

/// `EC_v1`'s `AlgorithmID`: the length of "id-aes256-GCM" (13), then the name.
const ALGORITHM_ID: &[u8] = b"\x0did-aes256-GCM";
const PARTY_U_INFO: &[u8] = b"Apple";

/// Decrypts a token's `data` with the merchant's processing key `secret`.
/// `merchant_id_hash` is SHA-256 of the merchant identifier (32 bytes): the hex value of the
/// processing certificate's extension 1.2.840.113635.100.6.32.
pub fn decrypt(
    secret: &p256::SecretKey,
    ephemeral_public_key: &[u8],
    merchant_id_hash: &[u8],
    data: &[u8],
) -> Result<Vec<u8>, KeyError> {
    if merchant_id_hash.len() != 32 {
        return Err(KeyError::Failed(format!(
            "the merchant identifier hash is 32 bytes (SHA-256), not {}",
            merchant_id_hash.len()
        )));
    }
    let ephemeral = p256::PublicKey::from_public_key_der(ephemeral_public_key).map_err(|_| {
        KeyError::Failed("the ephemeral public key is not a P-256 SubjectPublicKeyInfo".into())
    })?;
    let shared = p256::ecdh::diffie_hellman(secret.to_nonzero_scalar(), ephemeral.as_affine());
    let mut kdf = Sha256::new();
    kdf.update(1u32.to_be_bytes());
    kdf.update(shared.raw_secret_bytes());
    kdf.update(ALGORITHM_ID);
    kdf.update(PARTY_U_INFO);
    kdf.update(merchant_id_hash);
    let key = Zeroizing::new(<[u8; 32]>::from(kdf.finalize()));
    let cipher = Aes256Gcm16::new_from_slice(key.as_slice())
        .map_err(|_| KeyError::Failed("bad derived key".into()))?;
    cipher.decrypt(&[0u8; 16].into(), data).map_err(|_| {
        KeyError::Failed("the token does not decrypt with this key and merchant identifier".into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD as B64;
    use p256::pkcs8::DecodePrivateKey;

    fn vector_file(name: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/vectors/applepay")
            .join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn merchant_key() -> p256::SecretKey {
        let pem = vector_file("merchant_private_key.pem");
        p256::SecretKey::from_sec1_pem(&pem)
            .or_else(|_| p256::SecretKey::from_pkcs8_pem(&pem))
            .unwrap()
    }

    fn token() -> serde_json::Value {
        serde_json::from_str(&vector_file("token.json")).unwrap()
    }

    fn field(token: &serde_json::Value, pointer: &str) -> Vec<u8> {
        B64.decode(token.pointer(pointer).unwrap().as_str().unwrap())
            .unwrap()
    }

    fn merchant_id_hash() -> Vec<u8> {
        Sha256::digest(b"merchant.test.spreedly.123merchant").to_vec()
    }

    #[test]
    fn the_published_token_decrypts_to_its_card_and_amount() {
        let token = token();
        let plain = decrypt(
            &merchant_key(),
            &field(&token, "/header/ephemeralPublicKey"),
            &merchant_id_hash(),
            &field(&token, "/data"),
        )
        .unwrap();
        let payment: serde_json::Value = serde_json::from_slice(&plain).unwrap();
        assert_eq!(
            payment["applicationPrimaryAccountNumber"],
            "5353756319181169"
        );
        assert_eq!(payment["applicationExpirationDate"], "240930");
        assert_eq!(payment["transactionAmount"], 100);
        assert_eq!(payment["currencyCode"], "840");
    }

    #[test]
    fn another_merchant_a_changed_byte_or_a_bad_key_fail_cleanly() {
        let token = token();
        let ephemeral = field(&token, "/header/ephemeralPublicKey");
        let data = field(&token, "/data");
        let key = merchant_key();
        let other_merchant = Sha256::digest(b"merchant.other").to_vec();
        assert!(matches!(
            decrypt(&key, &ephemeral, &other_merchant, &data),
            Err(KeyError::Failed(_))
        ));
        let mut tampered = data.clone();
        tampered[3] ^= 1;
        assert!(decrypt(&key, &ephemeral, &merchant_id_hash(), &tampered).is_err());
        assert!(decrypt(&key, &ephemeral, &merchant_id_hash(), &data[..10]).is_err());
        assert!(decrypt(&key, &ephemeral, &merchant_id_hash(), &[]).is_err());
        assert!(decrypt(&key, b"not a key", &merchant_id_hash(), &data).is_err());
        assert!(decrypt(&key, &ephemeral, &[0u8; 31], &data).is_err());
        // Another processing key: the shared secret differs.
        let stranger = p256::SecretKey::from_slice(&[7u8; 32]).unwrap();
        assert!(decrypt(&stranger, &ephemeral, &merchant_id_hash(), &data).is_err());
    }
}
