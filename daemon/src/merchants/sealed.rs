//! Sensitive merchant data at rest (identity and account numbers): sealed with AES-256-GCM
//! under the master key, which comes from the environment or a key file named in the config
//! and never from the data dir. The record's id and the field's name are the additional
//! data, so a sealed value cannot be moved to another record or field unnoticed. Each sealed
//! value names its key (`key_id`, a hash prefix), so rotation can tell old from new.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use crate::domain::records::Sealed;
use crate::settings::KeySource;

/// The master key.
pub struct MasterKey {
    key: LessSafeKey,
    id: String,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({})", self.id)
    }
}

impl MasterKey {
    /// Reads a key given as `env:VAR` or `file:PATH` (64 hex characters: 32 bytes).
    pub fn load(source: &str) -> Result<MasterKey, String> {
        let text = match KeySource::parse(source)? {
            KeySource::Env(var) => Zeroizing::new(
                std::env::var(&var)
                    .map_err(|_| format!("environment variable {var} is not set"))?,
            ),
            KeySource::File(path) => {
                Zeroizing::new(std::fs::read_to_string(&path).map_err(|e| {
                    format!("cannot read the master key file {}: {e}", path.display())
                })?)
            }
            KeySource::Inline(_) => {
                return Err("the master key must come from env: or file:, never inline".into());
            }
        };
        MasterKey::from_hex(text.trim())
    }

    pub fn from_hex(text: &str) -> Result<MasterKey, String> {
        let bytes = Zeroizing::new(
            hex::decode(text)
                .map_err(|_| "the master key must be 64 hex characters".to_string())?,
        );
        if bytes.len() != 32 {
            return Err(format!(
                "the master key must be 32 bytes (64 hex characters), not {}",
                bytes.len()
            ));
        }
        let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
        let key =
            UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| "unusable master key".to_string())?;
        Ok(MasterKey {
            key: LessSafeKey::new(key),
            id: hex::encode(&digest.as_ref()[..4]),
        })
    }

    /// A fresh random key, hex (for `paygated keys new-master`).
    pub fn generate_hex() -> String {
        let mut bytes = Zeroizing::new([0u8; 32]);
        SystemRandom::new()
            .fill(bytes.as_mut())
            .expect("the operating system's random source");
        hex::encode(bytes.as_ref())
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Seals `plain` for the field `field` of record `record_id`.
    pub fn seal(&self, record_id: &str, field: &str, plain: &str) -> Sealed {
        let mut nonce = [0u8; 12];
        SystemRandom::new()
            .fill(&mut nonce)
            .expect("the operating system's random source");
        let mut buffer = plain.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(format!("{record_id}/{field}").as_bytes()),
                &mut buffer,
            )
            .expect("sealing into a Vec cannot fail");
        Sealed {
            key_id: self.id.clone(),
            nonce: hex::encode(nonce),
            ciphertext: hex::encode(buffer),
        }
    }

    /// Opens a value sealed for `field` of `record_id`.
    pub fn open(
        &self,
        record_id: &str,
        field: &str,
        sealed: &Sealed,
    ) -> Result<Zeroizing<String>, String> {
        if sealed.key_id != self.id {
            return Err(format!(
                "{record_id}/{field} is sealed with key {}, not the configured key {}",
                sealed.key_id, self.id
            ));
        }
        let nonce: [u8; 12] = hex::decode(&sealed.nonce)
            .ok()
            .and_then(|n| n.try_into().ok())
            .ok_or_else(|| format!("{record_id}/{field}: bad nonce"))?;
        let mut buffer = hex::decode(&sealed.ciphertext)
            .map_err(|_| format!("{record_id}/{field}: bad ciphertext"))?;
        let plain = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(format!("{record_id}/{field}").as_bytes()),
                &mut buffer,
            )
            .map_err(|_| format!("{record_id}/{field} does not open with the configured key"))?;
        String::from_utf8(plain.to_vec())
            .map(Zeroizing::new)
            .map_err(|_| format!("{record_id}/{field}: not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key_record_and_field() {
        let key = MasterKey::from_hex(&MasterKey::generate_hex()).unwrap();
        let other = MasterKey::from_hex(&MasterKey::generate_hex()).unwrap();
        let sealed = key.seal("m_1", "id_number", "11010519491231002X");
        // No clear text (in the bytes: a hex digit run like "1101" turns up by chance).
        let bytes = hex::decode(&sealed.ciphertext).unwrap();
        assert!(
            !bytes.windows(8).any(|w| w == &b"11010519"[..]),
            "no clear text"
        );
        assert_eq!(
            *key.open("m_1", "id_number", &sealed).unwrap(),
            "11010519491231002X"
        );
        assert!(
            key.open("m_2", "id_number", &sealed).is_err(),
            "moved to another record"
        );
        assert!(
            key.open("m_1", "account", &sealed).is_err(),
            "moved to another field"
        );
        assert!(
            other.open("m_1", "id_number", &sealed).is_err(),
            "another key"
        );
        // One bit changed (replacing a byte with "00" changed nothing when it was 00 already,
        // one run in 256).
        let mut tampered = sealed.clone();
        let mut bytes = hex::decode(&tampered.ciphertext).unwrap();
        bytes[0] ^= 1;
        tampered.ciphertext = hex::encode(bytes);
        assert!(key.open("m_1", "id_number", &tampered).is_err());
        // Two seals of one value differ (fresh nonces).
        assert_ne!(
            key.seal("m_1", "f", "x").ciphertext,
            key.seal("m_1", "f", "x").ciphertext
        );
    }

    #[test]
    fn bad_keys_are_refused_with_a_reason() {
        assert!(MasterKey::from_hex("abcd").is_err());
        assert!(MasterKey::from_hex(&"zz".repeat(32)).is_err());
        assert!(MasterKey::load("inline:00").is_err());
    }
}
