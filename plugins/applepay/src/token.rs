//! The token a merchant's app or site receives from Apple Pay, and what it decrypts to
//! (Apple's "Payment Token Format Reference"). Pure parsing: no keys, no clock.
//!
//! Accepted: the `PKPaymentToken` (`{"paymentData": {...}, "paymentMethod": {...},
//! "transactionIdentifier": "..."}`) as Apple Pay JS and PassKit hand it over, or its
//! `paymentData` alone. Only `EC_v1` tokens: `RSA_v1` (China mainland RSA processing) is
//! refused by name.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;

/// Longest token text accepted (a real one is about 3 KiB).
pub const MAX_TOKEN_BYTES: usize = 64 * 1024;

#[derive(Deserialize)]
struct Wrapped {
    #[serde(rename = "paymentData")]
    payment_data: PaymentDataJson,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PaymentDataJson {
    version: String,
    data: String,
    signature: String,
    header: HeaderJson,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HeaderJson {
    #[serde(rename = "ephemeralPublicKey")]
    ephemeral_public_key: String,
    #[serde(rename = "publicKeyHash")]
    public_key_hash: String,
    #[serde(rename = "transactionId")]
    transaction_id: String,
    #[serde(rename = "applicationData", default)]
    application_data: Option<String>,
}

/// An `EC_v1` token, decoded but not yet verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub data: Vec<u8>,
    pub signature: Vec<u8>,
    pub ephemeral_public_key: Vec<u8>,
    /// SHA-256 of the merchant's processing certificate's public key (which key to use).
    pub public_key_hash: Vec<u8>,
    /// `transactionId` as sent (hex) and decoded.
    pub transaction_id_hex: String,
    pub transaction_id: Vec<u8>,
    pub application_data: Vec<u8>,
}

fn base64(field: &str, text: &str) -> Result<Vec<u8>, String> {
    B64.decode(text.trim())
        .map_err(|_| format!("{field} is not base64"))
}

fn hex(field: &str, text: &str) -> Result<Vec<u8>, String> {
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("{field} is not hex"));
    }
    Ok((0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap_or(0))
        .collect())
}

/// Parses the token text the merchant passed on.
pub fn parse(text: &str) -> Result<Token, String> {
    if text.len() > MAX_TOKEN_BYTES {
        return Err(format!("the token is longer than {MAX_TOKEN_BYTES} bytes"));
    }
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("the token is not JSON: {e}"))?;
    let payment_data: PaymentDataJson = if value.get("paymentData").is_some() {
        serde_json::from_value::<Wrapped>(value)
            .map_err(|e| format!("malformed token: {e}"))?
            .payment_data
    } else {
        serde_json::from_value(value).map_err(|e| format!("malformed token: {e}"))?
    };
    match payment_data.version.as_str() {
        "EC_v1" => {}
        "RSA_v1" => return Err("RSA_v1 tokens are not supported; only EC_v1".into()),
        other => return Err(format!("unknown token version {other:?}")),
    }
    let header = payment_data.header;
    let transaction_id = hex("header.transactionId", &header.transaction_id)?;
    if transaction_id.is_empty() || transaction_id.len() > 64 {
        return Err("header.transactionId has an unusual length".into());
    }
    let token = Token {
        data: base64("data", &payment_data.data)?,
        signature: base64("signature", &payment_data.signature)?,
        ephemeral_public_key: base64("header.ephemeralPublicKey", &header.ephemeral_public_key)?,
        public_key_hash: base64("header.publicKeyHash", &header.public_key_hash)?,
        transaction_id_hex: header.transaction_id.to_ascii_lowercase(),
        transaction_id,
        application_data: match header.application_data.as_deref() {
            Some(text) => hex("header.applicationData", text)?,
            None => Vec::new(),
        },
    };
    // AES-GCM's 16-byte tag at least; the rest is the payment data.
    if token.data.len() <= 16 {
        return Err("data is too short to hold a payment".into());
    }
    Ok(token)
}

/// The decrypted payment data: the device account number and what the payer approved.
#[derive(Deserialize)]
struct PaymentJson {
    #[serde(rename = "applicationPrimaryAccountNumber")]
    account_number: String,
    #[serde(rename = "applicationExpirationDate")]
    expiration: String,
    #[serde(rename = "currencyCode")]
    currency_code: String,
    #[serde(rename = "transactionAmount")]
    amount: i64,
    #[serde(rename = "paymentDataType")]
    data_type: String,
    #[serde(rename = "paymentData")]
    payment_data: CryptogramJson,
}

#[derive(Deserialize)]
struct CryptogramJson {
    #[serde(rename = "onlinePaymentCryptogram")]
    cryptogram: Option<String>,
    #[serde(rename = "eciIndicator")]
    eci: Option<String>,
}

/// What the payment data holds. Card data: kept in memory for the acquirer call, never
/// logged, stored or returned (only [`Payment::network`] and [`Payment::last_four`] leave).
pub struct Payment {
    pub account_number: String,
    /// `YYMMDD`.
    pub expiration: String,
    /// ISO 4217 alphabetic code.
    pub currency: String,
    /// Minor units of `currency`.
    pub amount_minor: i64,
    pub cryptogram: String,
    pub eci: Option<String>,
}

impl std::fmt::Debug for Payment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the number, the expiry or the cryptogram.
        write!(
            f,
            "Payment {{ {} ****{}, {} {} }}",
            self.network(),
            self.last_four(),
            self.amount_minor,
            self.currency
        )
    }
}

/// ISO 4217 numeric to alphabetic codes and their exponents, for the currencies a merchant
/// here takes; an unknown code is refused, not guessed.
const CURRENCIES: &[(&str, &str, u8)] = &[
    ("156", "CNY", 2),
    ("344", "HKD", 2),
    ("446", "MOP", 2),
    ("840", "USD", 2),
    ("978", "EUR", 2),
    ("826", "GBP", 2),
    ("392", "JPY", 0),
    ("410", "KRW", 0),
    ("702", "SGD", 2),
    ("036", "AUD", 2),
    ("124", "CAD", 2),
    ("901", "TWD", 2),
];

/// The alphabetic code and exponent of an ISO 4217 numeric code.
pub fn currency(numeric: &str) -> Option<(&'static str, u8)> {
    CURRENCIES
        .iter()
        .find(|(n, _, _)| *n == numeric)
        .map(|(_, alpha, exponent)| (*alpha, *exponent))
}

/// The exponent of an alphabetic code this plugin knows.
pub fn currency_exponent(alpha: &str) -> Option<(&'static str, u8)> {
    CURRENCIES
        .iter()
        .find(|(_, a, _)| *a == alpha)
        .map(|(_, alpha, exponent)| (*alpha, *exponent))
}

/// Parses the decrypted payment data.
pub fn payment(plaintext: &[u8]) -> Result<Payment, String> {
    let json: PaymentJson = serde_json::from_slice(plaintext)
        .map_err(|_| "the decrypted payment data is not the expected JSON".to_string())?;
    if json.data_type != "3DSecure" {
        return Err(format!(
            "payment data type {:?} is not supported (3DSecure only)",
            json.data_type
        ));
    }
    let number = &json.account_number;
    if !(12..=19).contains(&number.len()) || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err("the device account number is malformed".into());
    }
    if json.expiration.len() != 6 || !json.expiration.bytes().all(|b| b.is_ascii_digit()) {
        return Err("the expiration date is malformed".into());
    }
    let (currency, _) = currency(&json.currency_code)
        .ok_or_else(|| format!("unknown currency code {:?}", json.currency_code))?;
    if json.amount < 0 {
        return Err("the amount is negative".into());
    }
    let cryptogram = json
        .payment_data
        .cryptogram
        .filter(|c| !c.is_empty())
        .ok_or("no online payment cryptogram")?;
    Ok(Payment {
        account_number: json.account_number,
        expiration: json.expiration,
        currency: currency.to_owned(),
        amount_minor: json.amount,
        cryptogram,
        eci: json.payment_data.eci,
    })
}

impl Payment {
    /// The card network, from the account number's issuer range.
    pub fn network(&self) -> &'static str {
        let n = &self.account_number;
        let prefix = |len: usize| {
            n.get(..len)
                .and_then(|p| p.parse::<u32>().ok())
                .unwrap_or(0)
        };
        match (prefix(1), prefix(2), prefix(4)) {
            (4, _, _) => "visa",
            (_, 51..=55, _) | (_, _, 2221..=2720) => "mastercard",
            (_, 34 | 37, _) => "amex",
            (_, 62, _) => "unionpay",
            (_, 65, _) | (_, _, 6011) => "discover",
            (_, 35, _) => "jcb",
            _ => "other",
        }
    }

    pub fn last_four(&self) -> &str {
        &self.account_number[self.account_number.len() - 4..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector() -> String {
        std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../tests/vectors/applepay/token.json"),
        )
        .unwrap()
    }

    #[test]
    fn the_published_token_parses_bare_and_wrapped() {
        let bare = parse(&vector()).unwrap();
        assert_eq!(
            bare.transaction_id_hex,
            "f7f133694685bab2f44ae3a7b54e2c0d0d39a3bc73fa2e6b14a2baf628d6ce87"
        );
        assert_eq!(bare.transaction_id.len(), 32);
        assert!(bare.application_data.is_empty());
        let wrapped = format!(
            r#"{{"paymentData": {}, "paymentMethod": {{"displayName": "MasterCard 1169", "network": "MasterCard", "type": "debit"}}, "transactionIdentifier": "F7F1"}}"#,
            vector()
        );
        assert_eq!(parse(&wrapped).unwrap(), bare);
    }

    #[test]
    fn malformed_tokens_are_refused_with_the_field_named() {
        let good: serde_json::Value = serde_json::from_str(&vector()).unwrap();
        let with = |pointer: &str, value: serde_json::Value| {
            let mut token = good.clone();
            *token.pointer_mut(pointer).unwrap() = value;
            parse(&token.to_string()).unwrap_err()
        };
        assert!(with("/version", "RSA_v1".into()).contains("RSA_v1"));
        assert!(with("/version", "EC_v9".into()).contains("unknown token version"));
        assert!(with("/data", "***".into()).contains("data is not base64"));
        assert!(with("/data", "AAAA".into()).contains("too short"));
        assert!(with("/header/transactionId", "xyz".into()).contains("transactionId"));
        assert!(with("/header/transactionId", "".into()).contains("transactionId"));
        assert!(with("/signature", 5.into()).contains("malformed token"));
        for bad in ["", "null", "[]", "{}", "{\"paymentData\": 1}", "\"EC_v1\""] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let mut extra = good.clone();
        extra["header"]["wrappedKey"] = "AAAA".into();
        assert!(parse(&extra.to_string()).is_err());
        assert!(
            parse(&" ".repeat(MAX_TOKEN_BYTES + 1))
                .unwrap_err()
                .contains("longer")
        );
    }

    #[test]
    fn payment_data_parses_and_never_prints_the_card() {
        let plain = br#"{"applicationPrimaryAccountNumber":"5353756319181169","applicationExpirationDate":"240930","currencyCode":"840","transactionAmount":100,"deviceManufacturerIdentifier":"050110030273","paymentDataType":"3DSecure","paymentData":{"onlinePaymentCryptogram":"AMwBRjPWDnAgAA7Rls7mAoABFA=="}}"#;
        let payment = payment(plain).unwrap();
        assert_eq!(
            (payment.currency.as_str(), payment.amount_minor),
            ("USD", 100)
        );
        assert_eq!(
            (payment.network(), payment.last_four()),
            ("mastercard", "1169")
        );
        let printed = format!("{payment:?}");
        assert!(
            !printed.contains("5353756319181169")
                && !printed.contains("AMwB")
                && !printed.contains("240930")
        );
        let bad = |text: &str| super::payment(text.as_bytes()).unwrap_err();
        assert!(
            bad(&String::from_utf8_lossy(plain).replace("\"840\"", "\"999\"")).contains("currency")
        );
        assert!(
            bad(&String::from_utf8_lossy(plain).replace("3DSecure", "EMV")).contains("3DSecure")
        );
        assert!(
            bad(&String::from_utf8_lossy(plain).replace("5353756319181169", "53537563191811x9"))
                .contains("account number")
        );
        assert!(
            bad(&String::from_utf8_lossy(plain).replace("AMwBRjPWDnAgAA7Rls7mAoABFA==", ""))
                .contains("cryptogram")
        );
        assert!(bad("not json").contains("not the expected JSON"));
    }

    #[test]
    fn networks_by_issuer_range() {
        let network = |number: &str| {
            Payment {
                account_number: number.into(),
                expiration: "300101".into(),
                currency: "USD".into(),
                amount_minor: 1,
                cryptogram: "x".into(),
                eci: None,
            }
            .network()
        };
        assert_eq!(network("4111111111111111"), "visa");
        assert_eq!(network("2223000048400011"), "mastercard");
        assert_eq!(network("378282246310005"), "amex");
        assert_eq!(network("6011111111111117"), "discover");
        assert_eq!(network("6212345678901232"), "unionpay");
        assert_eq!(network("3530111333300000"), "jcb");
        assert_eq!(network("9999111122223333"), "other");
    }
}
