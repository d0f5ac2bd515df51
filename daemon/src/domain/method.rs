//! How a payment is paid (API.md §5).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    Qr,
    Barcode,
    Link,
    /// A payment token the payer's device made (Apple Pay), passed on by the merchant.
    WalletToken,
}

impl Method {
    pub fn parse(text: &str) -> Option<Method> {
        match text {
            "qr" => Some(Method::Qr),
            "barcode" => Some(Method::Barcode),
            "link" => Some(Method::Link),
            "wallet_token" => Some(Method::WalletToken),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Qr => "qr",
            Method::Barcode => "barcode",
            Method::Link => "link",
            Method::WalletToken => "wallet_token",
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_parses_from_its_own_name_and_nothing_else_does() {
        for method in [
            Method::Qr,
            Method::Barcode,
            Method::Link,
            Method::WalletToken,
        ] {
            assert_eq!(Method::parse(method.as_str()), Some(method));
            assert_eq!(
                serde_json::to_string(&method).unwrap(),
                format!("\"{method}\"")
            );
        }
        assert_eq!(Method::parse("QR"), None);
        assert_eq!(Method::parse(""), None);
    }
}
