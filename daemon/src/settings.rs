//! What the config hands each part of the daemon, in plain values: a part defines its own
//! settings type and reports a wrong value as a [`FieldError`] naming the config field
//! (`server.tls.cert_file`); `config/` places it in the file. Nothing outside `config/` sees
//! the file's spans.

use std::fmt;
use std::path::PathBuf;

/// A setting a part found unusable, named by its dotted path in the config file
/// (`plugins[1].path`, `merchants[0].providers.alipay.keys.app_private_key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for FieldError {}

/// Where a merchant's key material comes from. The host reads it; plugins only name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    File(PathBuf),
    Env(String),
    Inline(String),
}

impl KeySource {
    pub fn parse(text: &str) -> Result<KeySource, String> {
        let (kind, rest) = text
            .split_once(':')
            .ok_or_else(|| format!("\"{text}\" must start with file:, env: or inline:"))?;
        if rest.is_empty() {
            return Err(format!("\"{kind}:\" needs a value after the colon"));
        }
        match kind {
            "file" => Ok(KeySource::File(PathBuf::from(rest))),
            "env" => Ok(KeySource::Env(rest.to_owned())),
            "inline" => Ok(KeySource::Inline(rest.to_owned())),
            _ => Err(format!(
                "unknown key source \"{kind}\"; use file:, env: or inline:"
            )),
        }
    }
}

impl KeySource {
    /// The secret's bytes, read now; `what` names it in errors ("key", "secret").
    pub fn read(&self, what: &str) -> Result<zeroize::Zeroizing<Vec<u8>>, String> {
        use zeroize::Zeroizing;
        match self {
            KeySource::Inline(value) => Ok(Zeroizing::new(value.as_bytes().to_vec())),
            KeySource::Env(var) => std::env::var(var)
                .map(|v| Zeroizing::new(v.into_bytes()))
                .map_err(|_| format!("environment variable {var} is not set")),
            KeySource::File(path) => std::fs::read(path)
                .map(Zeroizing::new)
                .map_err(|e| format!("cannot read {what} file {}: {e}", path.display())),
        }
    }
}
