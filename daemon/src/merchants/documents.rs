//! The images an application carries to a provider (the business licence, identity cards,
//! the store, an agent's authorisation letter), for providers whose review needs them (WeChat Pay).
//!
//! An image lives only as long as the request that carries it: checked here, handed to the
//! provider's plugin inside the materials (which uploads it and names it in the
//! application), then dropped. The daemon never stores one; the audit log keeps each image's
//! kind, type, size and SHA-256, so an operator can tell which image went without keeping it.

use base64::Engine as _;
use serde_json::{Value, json};

use super::onboarding::OnboardingError;

/// The largest image a provider takes (WeChat Pay: 2M).
pub const IMAGE_BYTES_MAX: usize = 2 << 20;

/// The kinds of image, by their key under `documents`, with the parameter that names each:
/// the licence, both sides of the legal person's identity card, the store's entrance and
/// inside, the agent's identity card and authorisation letter (when the contact is not the
/// legal person), and both sides of each beneficial owner's identity card.
pub const KINDS: [(&str, &str); 16] = [
    ("business_license", "documents.business_license"),
    ("id_card_front", "documents.id_card_front"),
    ("id_card_back", "documents.id_card_back"),
    ("store_entrance", "documents.store_entrance"),
    ("store_indoor", "documents.store_indoor"),
    ("contact_id_front", "documents.contact_id_front"),
    ("contact_id_back", "documents.contact_id_back"),
    ("authorization_letter", "documents.authorization_letter"),
    (
        "beneficial_owner_1_id_front",
        "documents.beneficial_owner_1_id_front",
    ),
    (
        "beneficial_owner_1_id_back",
        "documents.beneficial_owner_1_id_back",
    ),
    (
        "beneficial_owner_2_id_front",
        "documents.beneficial_owner_2_id_front",
    ),
    (
        "beneficial_owner_2_id_back",
        "documents.beneficial_owner_2_id_back",
    ),
    (
        "beneficial_owner_3_id_front",
        "documents.beneficial_owner_3_id_front",
    ),
    (
        "beneficial_owner_3_id_back",
        "documents.beneficial_owner_3_id_back",
    ),
    (
        "beneficial_owner_4_id_front",
        "documents.beneficial_owner_4_id_front",
    ),
    (
        "beneficial_owner_4_id_back",
        "documents.beneficial_owner_4_id_back",
    ),
];

/// One image, checked.
#[derive(Clone, PartialEq, Eq)]
pub struct Document {
    pub kind: &'static str,
    pub content_type: &'static str,
    pub content: Vec<u8>,
}

impl std::fmt::Debug for Document {
    /// Never the image itself (it may end up in a log line).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Document")
            .field("kind", &self.kind)
            .field("content_type", &self.content_type)
            .field("bytes", &self.content.len())
            .finish()
    }
}

/// The content type an image's first bytes say it is, among those providers take.
fn sniffed(content: &[u8]) -> Option<&'static str> {
    if content.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if content.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if content.starts_with(b"BM") {
        Some("image/bmp")
    } else {
        None
    }
}

impl Document {
    /// `kind` one of [`KINDS`]; `content_type`
    /// `image/jpeg`, `image/png` or `image/bmp`, and the image (base64 in `data`, 1 byte to
    /// 2 MiB) really of that type.
    pub fn check(kind: &str, content_type: &str, data: &str) -> Result<Document, OnboardingError> {
        let (kind, param) = KINDS
            .iter()
            .copied()
            .find(|(k, _)| *k == kind)
            .ok_or_else(|| OnboardingError::Invalid {
                param: "documents",
                message: format!(
                    "unknown document {kind:?}: one of {}",
                    KINDS.map(|(k, _)| k).join(", ")
                ),
            })?;
        let invalid = |message: String| OnboardingError::Invalid { param, message };
        let declared = ["image/jpeg", "image/png", "image/bmp"]
            .into_iter()
            .find(|t| t.eq_ignore_ascii_case(content_type.trim()))
            .ok_or_else(|| {
                invalid(format!(
                    "{param}.content_type must be image/jpeg, image/png or image/bmp"
                ))
            })?;
        let content = base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|_| invalid(format!("{param}.data is not base64")))?;
        if content.is_empty() || content.len() > IMAGE_BYTES_MAX {
            return Err(invalid(format!(
                "{param} must be 1 byte to 2 MiB, not {} bytes",
                content.len()
            )));
        }
        if sniffed(&content) != Some(declared) {
            return Err(invalid(format!(
                "{param} is not an {declared} image (its first bytes say otherwise)"
            )));
        }
        Ok(Document {
            kind,
            content_type: declared,
            content,
        })
    }

    /// What the audit log keeps of it.
    pub fn summary(&self) -> Value {
        json!({
            "kind": self.kind,
            "content_type": self.content_type,
            "bytes": self.content.len(),
            "sha256": hex::encode(ring::digest::digest(&ring::digest::SHA256, &self.content)),
        })
    }
}

/// The images as the materials carry them to the plugin: `{"business_license":
/// {"content_type", "data"}, ...}` (`data` in base64).
pub fn materials(documents: &[Document]) -> Value {
    let engine = base64::engine::general_purpose::STANDARD;
    Value::Object(
        documents
            .iter()
            .map(|d| {
                (
                    d.kind.to_owned(),
                    json!({"content_type": d.content_type, "data": engine.encode(&d.content)}),
                )
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const JPEG: &[u8] = &[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, b'J', b'F', b'I', b'F', 0];

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    fn refusal(kind: &str, content_type: &str, data: &str) -> (&'static str, String) {
        match Document::check(kind, content_type, data) {
            Err(OnboardingError::Invalid { param, message }) => (param, message),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn an_image_is_checked_and_summarised_without_its_content() {
        let d = Document::check("id_card_front", "IMAGE/JPEG", &b64(JPEG)).unwrap();
        assert_eq!((d.kind, d.content_type), ("id_card_front", "image/jpeg"));
        assert_eq!(d.content, JPEG);
        let summary = d.summary();
        assert_eq!(summary["bytes"], JPEG.len());
        assert_eq!(summary["sha256"].as_str().unwrap().len(), 64);
        assert!(!format!("{d:?} {summary}").contains(&b64(JPEG)));
        let m = materials(std::slice::from_ref(&d));
        assert_eq!(m["id_card_front"]["data"], b64(JPEG));
        assert_eq!(m["id_card_front"]["content_type"], "image/jpeg");
    }

    #[test]
    fn bad_images_are_refused_naming_the_parameter() {
        let png = b"\x89PNG\r\n\x1a\n\0\0".to_vec();
        let big = [JPEG, &vec![0; IMAGE_BYTES_MAX]].concat();
        let cases = [
            (
                "business_license",
                "image/gif",
                b64(b"GIF89a"),
                "image/jpeg, image/png",
            ),
            (
                "business_license",
                "image/png",
                b64(JPEG),
                "not an image/png",
            ),
            (
                "business_license",
                "image/jpeg",
                b64(&png),
                "not an image/jpeg",
            ),
            (
                "business_license",
                "image/jpeg",
                "not base64!".into(),
                "not base64",
            ),
            (
                "business_license",
                "image/jpeg",
                String::new(),
                "1 byte to 2 MiB",
            ),
            (
                "business_license",
                "image/jpeg",
                b64(&big),
                "not 2097163 bytes",
            ),
            (
                "business_license",
                "image/jpeg",
                b64(b"<svg onload=x>"),
                "not an image/jpeg",
            ),
        ];
        for (kind, content_type, data, expected) in cases {
            let (param, message) = refusal(kind, content_type, &data);
            assert_eq!(param, "documents.business_license");
            assert!(
                message.contains(expected),
                "{message} should say {expected}"
            );
        }
        let (param, message) = refusal("passport", "image/jpeg", &b64(JPEG));
        assert_eq!(param, "documents");
        assert!(message.contains("passport"));
    }
}
