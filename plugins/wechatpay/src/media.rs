//! The images an applyment names by media id (the business licence, both sides of the legal
//! person's identity card), the pure part: reading them from the materials, the multipart
//! form of WeChat Pay's image upload (`POST /v3/merchant/media/upload`), and its answer.
//!
//! The upload's signature covers its `meta` part (`{"filename","sha256"}`), not the form.
//! The form's boundary is derived from the image's digest, so the same image always makes
//! the same request body (and a boundary that cannot occur inside the image).

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

/// Which image, by its key under the materials' `documents`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 营业执照: `subject_info.business_license_info.license_copy`.
    BusinessLicense,
    /// 身份证人像面: `id_card_info.id_card_copy`.
    IdCardFront,
    /// 身份证国徽面: `id_card_info.id_card_national`.
    IdCardBack,
}

impl Kind {
    pub fn key(self) -> &'static str {
        match self {
            Kind::BusinessLicense => "business_license",
            Kind::IdCardFront => "id_card_front",
            Kind::IdCardBack => "id_card_back",
        }
    }
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
    pub kind: Kind,
    pub format: Format,
    pub content: Vec<u8>,
}

impl Image {
    pub fn filename(&self) -> String {
        format!("{}.{}", self.kind.key(), self.format.extension())
    }
}

/// The three images an enterprise applyment needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Documents {
    pub business_license: Image,
    pub id_card_front: Image,
    pub id_card_back: Image,
}

#[derive(Debug, Deserialize)]
struct RawImage {
    content_type: Option<String>,
    data: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct RawDocuments {
    business_license: Option<RawImage>,
    id_card_front: Option<RawImage>,
    id_card_back: Option<RawImage>,
}

#[derive(Debug, Deserialize)]
struct RawMaterials {
    documents: Option<RawDocuments>,
}

fn invalid(kind: Kind, what: &str) -> ProviderError {
    ProviderError::InvalidRequest(format!(
        "wechatpay onboarding: `documents.{}` {what}",
        kind.key()
    ))
}

fn image(kind: Kind, raw: Option<RawImage>) -> Result<Image, ProviderError> {
    use base64::Engine as _;
    let raw = raw.ok_or_else(|| {
        invalid(
            kind,
            "is required: WeChat Pay's applyment needs a photo of the business licence and of both sides of the legal person's identity card",
        )
    })?;
    let format = raw
        .content_type
        .as_deref()
        .and_then(Format::of_content_type)
        .ok_or_else(|| invalid(kind, "must be image/jpeg, image/png or image/bmp"))?;
    let content = base64::engine::general_purpose::STANDARD
        .decode(raw.data.unwrap_or_default().trim())
        .map_err(|_| invalid(kind, "has a `data` that is not base64"))?;
    if content.is_empty() || content.len() > IMAGE_BYTES_MAX {
        return Err(invalid(
            kind,
            "must be 1 byte to 2 MiB (WeChat Pay's limit)",
        ));
    }
    if Format::of_content(&content) != Some(format) {
        return Err(invalid(
            kind,
            &format!("is not a {} image", format.extension().to_uppercase()),
        ));
    }
    Ok(Image {
        kind,
        format,
        content,
    })
}

impl Documents {
    /// The materials' `documents`: `{"business_license", "id_card_front", "id_card_back"}`,
    /// each `{"content_type", "data"}` (base64). Every one is required.
    pub fn parse(materials_json: &str) -> Result<Documents, ProviderError> {
        let raw: RawMaterials = serde_json::from_str(materials_json).map_err(|e| {
            ProviderError::InvalidRequest(format!(
                "wechatpay onboarding: the documents are not valid: {e}"
            ))
        })?;
        let d = raw.documents.unwrap_or_default();
        Ok(Documents {
            business_license: image(Kind::BusinessLicense, d.business_license)?,
            id_card_front: image(Kind::IdCardFront, d.id_card_front)?,
            id_card_back: image(Kind::IdCardBack, d.id_card_back)?,
        })
    }
}

/// What an applyment names the images by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaIds {
    pub license_copy: String,
    pub id_card_copy: String,
    pub id_card_national: String,
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

    #[test]
    fn the_three_images_are_read_and_checked() {
        let documents = Documents::parse(&materials(all_three())).unwrap();
        assert_eq!(documents.business_license.content, JPEG);
        assert_eq!(documents.id_card_back.filename(), "id_card_back.jpg");

        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        let mut d = all_three();
        d["id_card_front"] = json!({"content_type": "image/png", "data": b64(&png)});
        let documents = Documents::parse(&materials(d)).unwrap();
        assert_eq!(documents.id_card_front.format, Format::Png);
    }

    #[test]
    fn missing_malformed_and_hostile_images_are_refused_naming_the_field() {
        let mut d = all_three();
        d.as_object_mut().unwrap().remove("id_card_back");
        assert!(refusal(d).contains("`documents.id_card_back` is required"));
        assert!(refusal(json!(null)).contains("`documents.business_license` is required"));
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
        let upload = upload(&documents.business_license);
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
