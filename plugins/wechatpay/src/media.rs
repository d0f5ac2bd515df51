//! The images an applyment names by media id (the business licence, identity cards, the
//! store, the agent's authorisation letter), the pure part: reading them from the materials, the multipart
//! form of WeChat Pay's image upload (`POST /v3/merchant/media/upload`), and its answer.
//!
//! The upload's signature covers its `meta` part (`{"filename","sha256"}`), not the form.
//! The form's boundary is derived from the image's digest, so the same image always makes
//! the same request body (and a boundary that cannot occur inside the image).

use std::collections::BTreeMap;

use paygate_plugin_api::ProviderError;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::transform::{Answer, Call, Failure, body_error, generic_error, parse_body};

/// Where images are uploaded (appended to `base_url`).
pub const PATH: &str = "/v3/merchant/media/upload";
/// The largest image WeChat Pay takes: 2M.
pub const IMAGE_BYTES_MAX: usize = 2 << 20;
/// A media id in an answer is at most this long (WeChat Pay's are about 100 characters).
const MEDIA_ID_CHARS_MAX: usize = 512;

/// The images the materials' `documents` may carry, by key: the licence, both sides of the
/// legal person's identity card, the store's entrance and inside, the agent's identity card
/// and authorisation letter, and both sides of each beneficial owner's identity card
/// (`beneficial_owner_1_id_front` ... `beneficial_owner_4_id_back`).
const KEYS: [&str; 8] = [
    "business_license",
    "id_card_front",
    "id_card_back",
    "store_entrance",
    "store_indoor",
    "contact_id_front",
    "contact_id_back",
    "authorization_letter",
];

/// The key of the `side` (`front` or `back`) of beneficial owner `index`'s (from 0) card.
pub fn owner_key(index: usize, side: &str) -> String {
    format!("beneficial_owner_{}_id_{side}", index + 1)
}

fn is_key(key: &str) -> bool {
    KEYS.contains(&key)
        || (0..crate::details::OWNERS_MAX)
            .any(|i| key == owner_key(i, "front") || key == owner_key(i, "back"))
}

/// The formats WeChat Pay takes, told by their first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jpg,
    Png,
    Bmp,
}

impl Format {
    fn of_content_type(content_type: &str) -> Option<Format> {
        match content_type.trim().to_ascii_lowercase().as_str() {
            "image/jpeg" | "image/jpg" => Some(Format::Jpg),
            "image/png" => Some(Format::Png),
            "image/bmp" => Some(Format::Bmp),
            _ => None,
        }
    }

    fn of_content(bytes: &[u8]) -> Option<Format> {
        if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(Format::Jpg)
        } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(Format::Png)
        } else if bytes.starts_with(b"BM") {
            Some(Format::Bmp)
        } else {
            None
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Format::Jpg => "jpg",
            Format::Png => "png",
            Format::Bmp => "bmp",
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Format::Jpg => "image/jpeg",
            Format::Png => "image/png",
            Format::Bmp => "image/bmp",
        }
    }
}

/// One image, checked: a JPG, PNG or BMP of 1 byte to 2M whose content is what its
/// content type says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub key: String,
    pub format: Format,
    pub content: Vec<u8>,
}

impl Image {
    pub fn filename(&self) -> String {
        format!("{}.{}", self.key, self.format.extension())
    }
}

/// The images given, each checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Documents {
    images: BTreeMap<String, Image>,
}

#[derive(Debug, Deserialize)]
struct RawImage {
    content_type: Option<String>,
    data: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawMaterials {
    documents: Option<BTreeMap<String, RawImage>>,
}

fn invalid(key: &str, what: &str) -> ProviderError {
    ProviderError::InvalidRequest(format!("wechatpay onboarding: `documents.{key}` {what}"))
}

fn image(key: &str, raw: RawImage) -> Result<Image, ProviderError> {
    use base64::Engine as _;
    let format = raw
        .content_type
        .as_deref()
        .and_then(Format::of_content_type)
        .ok_or_else(|| invalid(key, "must be image/jpeg, image/png or image/bmp"))?;
    let content = base64::engine::general_purpose::STANDARD
        .decode(raw.data.unwrap_or_default().trim())
        .map_err(|_| invalid(key, "has a `data` that is not base64"))?;
    if content.is_empty() || content.len() > IMAGE_BYTES_MAX {
        return Err(invalid(key, "must be 1 byte to 2 MiB (WeChat Pay's limit)"));
    }
    if Format::of_content(&content) != Some(format) {
        return Err(invalid(
            key,
            &format!("is not a {} image", format.extension().to_uppercase()),
        ));
    }
    Ok(Image {
        key: key.to_owned(),
        format,
        content,
    })
}

impl Documents {
    /// The materials' `documents`: `{"business_license": {"content_type", "data"}, ...}`
    /// (base64), every image given checked; an unknown key is `invalid-request`. Which of
    /// them an applyment needs is for `onboarding` to say ([`Documents::get`]).
    pub fn parse(materials_json: &str) -> Result<Documents, ProviderError> {
        let raw: RawMaterials = serde_json::from_str(materials_json).map_err(|e| {
            ProviderError::InvalidRequest(format!(
                "wechatpay onboarding: the documents are not valid: {e}"
            ))
        })?;
        let mut images = BTreeMap::new();
        for (key, raw) in raw.documents.unwrap_or_default() {
            if !is_key(&key) {
                return Err(invalid(
                    &key,
                    "is not an image WeChat Pay's applyment takes",
                ));
            }
            let checked = image(&key, raw)?;
            images.insert(key, checked);
        }
        Ok(Documents { images })
    }

    /// The image under `key`; `why` says what needs it when it is missing.
    pub fn get(&self, key: &str, why: &str) -> Result<&Image, ProviderError> {
        self.images
            .get(key)
            .ok_or_else(|| invalid(key, &format!("is required: {why}")))
    }
}

/// What an applyment names the images by: each uploaded image's media id, by its key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MediaIds(pub BTreeMap<String, String>);

impl MediaIds {
    /// The media id of the image under `key` (uploaded before the applyment is built).
    pub fn of(&self, key: &str) -> Result<&str, ProviderError> {
        self.0.get(key).map(String::as_str).ok_or_else(|| {
            ProviderError::InvalidRequest(format!(
                "wechatpay onboarding: `documents.{key}` was not uploaded"
            ))
        })
    }
}

/// One image's upload: the signed text (`meta`) and the form that carries it and the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub meta: String,
    pub content_type: String,
    pub body: Vec<u8>,
}

pub fn upload(image: &Image) -> Upload {
    let digest = hex(&Sha256::digest(&image.content));
    let filename = image.filename();
    let meta = serde_json::json!({"filename": filename, "sha256": digest}).to_string();
    let boundary = format!("paygate-{}", &digest[..32]);
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"meta\"\r\nContent-Type: application/json\r\n\r\n{meta}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: {}\r\n\r\n",
        image.format.content_type()
    )
    .into_bytes();
    body.extend_from_slice(&image.content);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    Upload {
        meta,
        content_type: format!("multipart/form-data; boundary={boundary}"),
        body,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Deserialize)]
struct UploadAnswer {
    media_id: Option<String>,
}

/// The upload's verified answer: `{"media_id"}`. An upload changes nothing anyone relies
/// on (an image no applyment names is unused), so a failure is never an unknown outcome:
/// WeChat Pay's refusals of the image are `invalid-request`, anything else `unavailable`.
pub fn interpret_upload(answer: Answer<'_>) -> Result<String, ProviderError> {
    let call = Call::MediaUpload;
    if !answer.is_success() {
        return Err(generic_error(call, &Failure::parse(answer)));
    }
    let parsed: UploadAnswer = parse_body(call, answer.body)?;
    parsed
        .media_id
        .filter(|id| {
            (1..=MEDIA_ID_CHARS_MAX).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
        })
        .ok_or_else(|| body_error(call, "no valid media_id"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use serde_json::json;

    pub const JPEG: &[u8] = &[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, b'J', b'F', b'I', b'F', 0];

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    fn materials(documents: serde_json::Value) -> String {
        json!({"name": "x", "documents": documents}).to_string()
    }

    fn all_three() -> serde_json::Value {
        let jpeg = json!({"content_type": "image/jpeg", "data": b64(JPEG)});
        json!({"business_license": jpeg, "id_card_front": jpeg, "id_card_back": jpeg})
    }

    fn refusal(documents: serde_json::Value) -> String {
        match Documents::parse(&materials(documents)) {
            Err(ProviderError::InvalidRequest(m)) => m,
            other => panic!("expected invalid-request, got {other:?}"),
        }
    }

    fn missing(documents: serde_json::Value, key: &str) -> String {
        match Documents::parse(&materials(documents))
            .unwrap()
            .get(key, "why")
        {
            Err(ProviderError::InvalidRequest(m)) => m,
            other => panic!("expected invalid-request, got {other:?}"),
        }
    }

    #[test]
    fn the_three_images_are_read_and_checked() {
        let documents = Documents::parse(&materials(all_three())).unwrap();
        assert_eq!(documents.get("business_license", "").unwrap().content, JPEG);
        assert_eq!(
            documents.get("id_card_back", "").unwrap().filename(),
            "id_card_back.jpg"
        );
        let mut d = all_three();
        d["beneficial_owner_4_id_back"] = d["business_license"].clone();
        let documents = Documents::parse(&materials(d)).unwrap();
        assert_eq!(
            documents.get(&owner_key(3, "back"), "").unwrap().filename(),
            "beneficial_owner_4_id_back.jpg"
        );

        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        let mut d = all_three();
        d["id_card_front"] = json!({"content_type": "image/png", "data": b64(&png)});
        let documents = Documents::parse(&materials(d)).unwrap();
        assert_eq!(
            documents.get("id_card_front", "").unwrap().format,
            Format::Png
        );
    }

    #[test]
    fn missing_malformed_and_hostile_images_are_refused_naming_the_field() {
        let mut d = all_three();
        d.as_object_mut().unwrap().remove("id_card_back");
        assert!(missing(d, "id_card_back").contains("`documents.id_card_back` is required: why"));
        assert!(
            missing(json!(null), "business_license")
                .contains("`documents.business_license` is required")
        );
        let mut d = all_three();
        d["beneficial_owner_5_id_front"] = d["business_license"].clone();
        assert!(refusal(d).contains("beneficial_owner_5_id_front` is not an image"));
        let cases = [
            (
                json!({"content_type": "image/gif", "data": b64(b"GIF89a")}),
                "image/jpeg",
            ),
            (json!({"data": b64(JPEG)}), "image/jpeg"),
            (
                json!({"content_type": "image/jpeg", "data": "%%%"}),
                "base64",
            ),
            (
                json!({"content_type": "image/jpeg", "data": ""}),
                "1 byte to 2 MiB",
            ),
            (json!({"content_type": "image/jpeg"}), "1 byte to 2 MiB"),
            (
                json!({"content_type": "image/png", "data": b64(JPEG)}),
                "not a PNG",
            ),
            (
                json!({"content_type": "image/jpeg", "data": b64(b"<script>")}),
                "not a JPG",
            ),
            (
                json!({"content_type": "image/jpeg", "data": b64(&[JPEG, &vec![0; IMAGE_BYTES_MAX]].concat())}),
                "2 MiB",
            ),
        ];
        for (image, expected) in cases {
            let mut d = all_three();
            d["business_license"] = image;
            let message = refusal(d);
            assert!(
                message.contains(expected),
                "{message} should say {expected}"
            );
            assert!(message.contains("documents.business_license"), "{message}");
        }
        // Wrong types anywhere: refused, not a panic.
        assert!(refusal(json!({"business_license": 7})).contains("not valid"));
        assert!(refusal(json!("documents")).contains("not valid"));
    }

    #[test]
    fn the_upload_form_carries_the_signed_meta_and_the_image() {
        let documents = Documents::parse(&materials(all_three())).unwrap();
        let upload = upload(documents.get("business_license", "").unwrap());
        let digest = hex(&Sha256::digest(JPEG));
        assert_eq!(
            upload.meta,
            format!(r#"{{"filename":"business_license.jpg","sha256":"{digest}"}}"#)
        );
        let boundary = format!("paygate-{}", &digest[..32]);
        assert_eq!(
            upload.content_type,
            format!("multipart/form-data; boundary={boundary}")
        );
        let mut expected = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"meta\"\r\nContent-Type: application/json\r\n\r\n{}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"business_license.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n",
            upload.meta
        )
        .into_bytes();
        expected.extend_from_slice(JPEG);
        expected.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        assert_eq!(upload.body, expected);
    }

    #[test]
    fn upload_answers_are_interpreted() {
        let ok = |body: &str| {
            interpret_upload(Answer {
                status: 200,
                body: body.as_bytes(),
            })
        };
        assert_eq!(ok(r#"{"media_id":"V1_abc"}"#).unwrap(), "V1_abc");
        for bad in [
            r#"{}"#,
            r#"{"media_id":""}"#,
            r#"{"media_id":"a b"}"#,
            "[]",
            "<html>",
        ] {
            assert!(
                matches!(ok(bad), Err(ProviderError::Unavailable(_))),
                "{bad}"
            );
        }
        let refused = interpret_upload(Answer {
            status: 400,
            body: br#"{"code":"PARAM_ERROR","message":"file too large"}"#,
        });
        assert!(
            matches!(refused, Err(ProviderError::InvalidRequest(m)) if m.contains("file too large"))
        );
        let down = interpret_upload(Answer {
            status: 500,
            body: br#"{"code":"SYSTEM_ERROR","message":"busy"}"#,
        });
        assert!(matches!(down, Err(ProviderError::Unavailable(_))));
    }
}
