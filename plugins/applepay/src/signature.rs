//! Verifying an `EC_v1` token's signature as Apple's "Payment Token Format Reference" asks:
//! a detached CMS `SignedData` whose signer certificate carries Apple's leaf marker
//! (1.2.840.113635.100.6.29) and chains, through an intermediate carrying
//! 1.2.840.113635.100.6.2.14, to Apple Root CA - G3 (compiled in); whose signed
//! `messageDigest` is SHA-256 of `ephemeralPublicKey ‖ data ‖ transactionId ‖
//! applicationData`; whose ECDSA signature over the signed attributes verifies with the
//! leaf's key; and whose `signingTime` is recent by the host's clock. Every certificate must
//! be valid at the signing time.

use p256::ecdsa::signature::hazmat::PrehashVerifier;
use sha2::{Digest, Sha256, Sha384};

use crate::der::{self, Element, tag};

/// Apple Root CA - G3, the only root a token may chain to.
const APPLE_ROOT_CA_G3: &str = include_str!("../AppleRootCA-G3.pem");

const SIGNED_DATA: &str = "1.2.840.113549.1.7.2";
const MESSAGE_DIGEST: &str = "1.2.840.113549.1.9.4";
const SIGNING_TIME: &str = "1.2.840.113549.1.9.5";
const SHA256: &str = "2.16.840.1.101.3.4.2.1";
const ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";
const ECDSA_SHA384: &str = "1.2.840.10045.4.3.3";
const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const P256: &str = "1.2.840.10045.3.1.7";
const P384: &str = "1.3.132.0.34";
const LEAF_MARKER: &str = "1.2.840.113635.100.6.29";
const INTERMEDIATE_MARKER: &str = "1.2.840.113635.100.6.2.14";

/// What was signed, for the digest check.
pub struct SignedParts<'a> {
    pub ephemeral_public_key: &'a [u8],
    pub data: &'a [u8],
    pub transaction_id: &'a [u8],
    pub application_data: &'a [u8],
}

/// The parts of a certificate the checks need, with the raw bytes that were signed.
struct Certificate<'a> {
    tbs: &'a [u8],
    signature_algorithm: Vec<u8>,
    signature: &'a [u8],
    issuer: &'a [u8],
    subject: &'a [u8],
    not_before: i64,
    not_after: i64,
    curve: Vec<u8>,
    public_key: &'a [u8],
    extensions: Vec<Vec<u8>>,
}

fn oid_of(element: Element<'_>) -> der::Result<Vec<u8>> {
    Ok(element
        .expect(tag::OID, "object identifier")?
        .content
        .to_vec())
}

/// The first OID of an `AlgorithmIdentifier`.
fn algorithm(element: Element<'_>) -> der::Result<Vec<u8>> {
    let parts = element.expect(tag::SEQUENCE, "algorithm")?.children()?;
    oid_of(*parts.first().ok_or("empty algorithm identifier")?)
}

fn parse_certificate(raw: Element<'_>) -> der::Result<Certificate<'_>> {
    let [tbs, signature_algorithm, signature] = raw
        .expect(tag::SEQUENCE, "certificate")?
        .children()?
        .try_into()
        .map_err(|_| "a certificate has three parts")?;
    let mut fields = tbs
        .expect(tag::SEQUENCE, "tbsCertificate")?
        .children()?
        .into_iter();
    let mut next = || fields.next().ok_or("tbsCertificate is short");
    let mut field = next()?;
    if field.tag == tag::CONTEXT_0 {
        field = next()?; // version
    }
    field.expect(tag::INTEGER, "serial number")?;
    next()?; // signature algorithm (the outer one is checked)
    let issuer = next()?.expect(tag::SEQUENCE, "issuer")?.raw;
    let validity = next()?.expect(tag::SEQUENCE, "validity")?.children()?;
    let [not_before, not_after] = validity.try_into().map_err(|_| "validity has two times")?;
    let subject = next()?.expect(tag::SEQUENCE, "subject")?.raw;
    let spki = next()?
        .expect(tag::SEQUENCE, "subject public key info")?
        .children()?;
    let [key_algorithm, key] = spki.try_into().map_err(|_| "malformed public key info")?;
    let key_algorithm = key_algorithm
        .expect(tag::SEQUENCE, "key algorithm")?
        .children()?;
    if key_algorithm.first().map(|e| e.content) != Some(der::oid(EC_PUBLIC_KEY).as_slice()) {
        return Err("not an EC public key".into());
    }
    let curve = oid_of(*key_algorithm.get(1).ok_or("no curve")?)?;
    let mut extensions = Vec::new();
    for rest in fields.by_ref() {
        if rest.tag == tag::CONTEXT_3 {
            let list = rest.children()?;
            let list = list.first().ok_or("empty extensions")?;
            for extension in list.expect(tag::SEQUENCE, "extensions")?.children()? {
                let parts = extension.expect(tag::SEQUENCE, "extension")?.children()?;
                extensions.push(oid_of(*parts.first().ok_or("empty extension")?)?);
            }
        }
    }
    Ok(Certificate {
        tbs: tbs.raw,
        signature_algorithm: algorithm(signature_algorithm)?,
        signature: signature.bit_string()?,
        issuer,
        subject,
        not_before: der::time(not_before)?,
        not_after: der::time(not_after)?,
        curve,
        public_key: key.bit_string()?,
        extensions,
    })
}

impl Certificate<'_> {
    fn has_extension(&self, dotted: &str) -> bool {
        let wanted = der::oid(dotted);
        self.extensions.contains(&wanted)
    }

    fn valid_at(&self, seconds: i64) -> bool {
        (self.not_before..=self.not_after).contains(&seconds)
    }

    /// Verifies an ECDSA signature (DER) over `message`'s `digest` with this key.
    fn verifies(&self, digest: &[u8], signature: &[u8]) -> bool {
        if self.curve == der::oid(P256) {
            let (Ok(key), Ok(signature)) = (
                p256::ecdsa::VerifyingKey::from_sec1_bytes(self.public_key),
                p256::ecdsa::Signature::from_der(signature),
            ) else {
                return false;
            };
            key.verify_prehash(digest, &signature).is_ok()
        } else if self.curve == der::oid(P384) {
            let (Ok(key), Ok(signature)) = (
                p384::ecdsa::VerifyingKey::from_sec1_bytes(self.public_key),
                p384::ecdsa::Signature::from_der(signature),
            ) else {
                return false;
            };
            key.verify_prehash(digest, &signature).is_ok()
        } else {
            false
        }
    }

    /// Whether `child` was issued and signed by this certificate.
    fn issued(&self, child: &Certificate<'_>) -> bool {
        let digest = if child.signature_algorithm == der::oid(ECDSA_SHA256) {
            Sha256::digest(child.tbs).to_vec()
        } else if child.signature_algorithm == der::oid(ECDSA_SHA384) {
            Sha384::digest(child.tbs).to_vec()
        } else {
            return false;
        };
        child.issuer == self.subject && self.verifies(&digest, child.signature)
    }
}

fn root() -> der::Result<Vec<u8>> {
    let base64: String = APPLE_ROOT_CA_G3
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(base64)
        .map_err(|e| format!("the compiled-in root: {e}"))
}

/// The signer's signed attributes: the message digest and the signing time.
struct Signer<'a> {
    signed_attributes: &'a [u8],
    digest_algorithm: Vec<u8>,
    signature_algorithm: Vec<u8>,
    signature: &'a [u8],
    message_digest: &'a [u8],
    signing_time: i64,
}

fn parse_signer(info: Element<'_>) -> der::Result<Signer<'_>> {
    let parts = info.expect(tag::SEQUENCE, "signer info")?.children()?;
    let [
        _version,
        _sid,
        digest_algorithm,
        attributes,
        signature_algorithm,
        signature,
        ..,
    ] = parts.as_slice()
    else {
        return Err("signer info is short".into());
    };
    let attributes = attributes.expect(tag::CONTEXT_0, "signed attributes")?;
    let mut message_digest = None;
    let mut signing_time = None;
    for attribute in attributes.children()? {
        let [kind, values] = attribute
            .expect(tag::SEQUENCE, "attribute")?
            .children()?
            .try_into()
            .map_err(|_| "an attribute has a type and values")?;
        let value = *values
            .expect(tag::SET, "attribute values")?
            .children()?
            .first()
            .ok_or("attribute without a value")?;
        if kind.content == der::oid(MESSAGE_DIGEST) {
            message_digest = Some(value.expect(tag::OCTET_STRING, "message digest")?.content);
        } else if kind.content == der::oid(SIGNING_TIME) {
            signing_time = Some(der::time(value)?);
        }
    }
    Ok(Signer {
        signed_attributes: attributes.raw,
        digest_algorithm: algorithm(*digest_algorithm)?,
        signature_algorithm: algorithm(*signature_algorithm)?,
        signature: signature.expect(tag::OCTET_STRING, "signature")?.content,
        message_digest: message_digest.ok_or("no signed message digest")?,
        signing_time: signing_time.ok_or("no signed signing time")?,
    })
}

/// Verifies `signature` (the token's CMS, DER or BER) over `signed`, with `now_seconds` the
/// host's clock and `max_age_seconds` how old a token may be. `Ok` with the signing time.
pub fn verify(
    signature: &[u8],
    signed: &SignedParts<'_>,
    now_seconds: i64,
    max_age_seconds: i64,
) -> Result<i64, String> {
    let [content_type, content] = der::read_all(signature)?
        .expect(tag::SEQUENCE, "content info")?
        .children()?
        .try_into()
        .map_err(|_| "content info has two parts")?;
    if oid_of(content_type)? != der::oid(SIGNED_DATA) {
        return Err("the signature is not a CMS SignedData".into());
    }
    let signed_data = *content
        .expect(tag::CONTEXT_0, "content")?
        .children()?
        .first()
        .ok_or("no SignedData")?;
    let parts = signed_data
        .expect(tag::SEQUENCE, "SignedData")?
        .children()?;
    let certificates = parts
        .iter()
        .find(|p| p.tag == tag::CONTEXT_0)
        .ok_or("the signature carries no certificates")?
        .children()?;
    let signer_infos = parts
        .last()
        .ok_or("no signer infos")?
        .expect(tag::SET, "signer infos")?
        .children()?;
    let [signer_info] = signer_infos.as_slice() else {
        return Err("exactly one signer expected".into());
    };
    let certificates = certificates
        .into_iter()
        .map(parse_certificate)
        .collect::<der::Result<Vec<_>>>()?;
    let leaf = certificates
        .iter()
        .find(|c| c.has_extension(LEAF_MARKER))
        .ok_or("no Apple Pay leaf certificate (1.2.840.113635.100.6.29)")?;
    let intermediate = certificates
        .iter()
        .find(|c| c.has_extension(INTERMEDIATE_MARKER))
        .ok_or("no Apple intermediate certificate (1.2.840.113635.100.6.2.14)")?;
    let root_der = root()?;
    let root = parse_certificate(der::read_all(&root_der)?)?;
    if !root.issued(intermediate) {
        return Err("the intermediate certificate is not signed by Apple Root CA - G3".into());
    }
    if !intermediate.issued(leaf) {
        return Err("the leaf certificate is not signed by the intermediate".into());
    }

    let signer = parse_signer(*signer_info)?;
    if signer.digest_algorithm != der::oid(SHA256)
        || signer.signature_algorithm != der::oid(ECDSA_SHA256)
    {
        return Err("the signer must use SHA-256 and ECDSA".into());
    }
    let mut digest = Sha256::new();
    digest.update(signed.ephemeral_public_key);
    digest.update(signed.data);
    digest.update(signed.transaction_id);
    digest.update(signed.application_data);
    if digest.finalize().as_slice() != signer.message_digest {
        return Err("the signed digest is not the token's".into());
    }
    // The signature covers the attributes as a SET (tag 0x31), not as the [0] they are sent in.
    let mut attributes = signer.signed_attributes.to_vec();
    attributes[0] = tag::SET;
    if !leaf.verifies(&Sha256::digest(&attributes), signer.signature) {
        return Err("the token's signature does not verify".into());
    }

    for (what, certificate) in [
        ("root", &root),
        ("intermediate", intermediate),
        ("leaf", leaf),
    ] {
        if !certificate.valid_at(signer.signing_time) {
            return Err(format!(
                "the {what} certificate was not valid at the signing time"
            ));
        }
    }
    // A little leeway for clocks that disagree; never a token from the future beyond it.
    const CLOCK_SKEW: i64 = 60;
    if signer.signing_time > now_seconds + CLOCK_SKEW {
        return Err("the token was signed in the future".into());
    }
    if now_seconds - signer.signing_time > max_age_seconds {
        return Err(format!(
            "the token was signed {} s ago, more than the {max_age_seconds} s allowed",
            now_seconds - signer.signing_time
        ));
    }
    Ok(signer.signing_time)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn token() -> serde_json::Value {
        serde_json::from_str(
            &std::fs::read_to_string(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../../tests/vectors/applepay/token.json"),
            )
            .unwrap(),
        )
        .unwrap()
    }

    fn field(token: &serde_json::Value, pointer: &str) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .decode(token.pointer(pointer).unwrap().as_str().unwrap())
            .unwrap()
    }

    fn check(signature: &[u8], now: i64) -> Result<i64, String> {
        let token = token();
        let transaction_id: Vec<u8> = (0..64)
            .step_by(2)
            .map(|i| {
                u8::from_str_radix(
                    &token["header"]["transactionId"].as_str().unwrap()[i..i + 2],
                    16,
                )
                .unwrap()
            })
            .collect();
        verify(
            signature,
            &SignedParts {
                ephemeral_public_key: &field(&token, "/header/ephemeralPublicKey"),
                data: &field(&token, "/data"),
                transaction_id: &transaction_id,
                application_data: &[],
            },
            now,
            300,
        )
    }

    const SIGNED_AT: i64 = 1_630_522_986;

    #[test]
    fn the_vector_verifies_at_its_signing_time_and_names_it() {
        assert_eq!(
            check(&field(&token(), "/signature"), SIGNED_AT + 5),
            Ok(SIGNED_AT)
        );
    }

    #[test]
    fn a_changed_signed_attribute_breaks_the_signature_not_the_parse() {
        let mut signature = field(&token(), "/signature");
        let at = signature
            .windows(13)
            .position(|w| w == b"210901190306Z")
            .unwrap();
        signature[at + 11] = b'7';
        let error = check(&signature, SIGNED_AT + 5).unwrap_err();
        assert!(error.contains("does not verify"), "{error}");
    }

    #[test]
    fn the_chain_runs_one_way_only() {
        let signature = field(&token(), "/signature");
        let parts = der::read_all(&signature).unwrap().children().unwrap();
        let signed_data = parts[1].children().unwrap()[0].children().unwrap();
        let certificates: Vec<_> = signed_data
            .iter()
            .find(|p| p.tag == tag::CONTEXT_0)
            .unwrap()
            .children()
            .unwrap()
            .into_iter()
            .map(|c| parse_certificate(c).unwrap())
            .collect();
        let leaf = certificates
            .iter()
            .find(|c| c.has_extension(LEAF_MARKER))
            .unwrap();
        let intermediate = certificates
            .iter()
            .find(|c| c.has_extension(INTERMEDIATE_MARKER))
            .unwrap();
        let root_der = root().unwrap();
        let root = parse_certificate(der::read_all(&root_der).unwrap()).unwrap();
        assert!(root.issued(intermediate) && intermediate.issued(leaf));
        assert!(!root.issued(leaf));
        assert!(!leaf.issued(intermediate));
        assert!(!intermediate.issued(&root));
    }
}
