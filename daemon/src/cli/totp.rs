//! `paygated keys totp enroll | reset --key-id ID`: gives an erp or admin key an
//! authenticator. The secret is sealed under the master key and written into the key's
//! `[[api_keys]]` entry of the config file, in place (comments and layout kept; the file
//! replaced atomically), so that it travels with the key's hash and a reload applies it
//! while the daemon runs. The secret is printed once, as an `otpauth://` URI and a QR code
//! for the authenticator app.

use std::path::Path;
use std::process::ExitCode;

use qrcode::QrCode;
use qrcode::render::unicode::Dense1x2;
use zeroize::Zeroizing;

use crate::auth::Authenticator;
use crate::config::{Config, TOTP_FIELD, totp_record_id};
use crate::process::{EXIT_CONFIG, EXIT_RUNTIME};

/// Whether the key may have an authenticator already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A first authenticator: refused if the key has one.
    Enroll,
    /// A new one for a lost authenticator: the old one stops working on the next reload,
    /// and the key's console sessions end.
    Reset,
}

pub fn run(config_path: &Path, key_id: &str, mode: Mode) -> ExitCode {
    match enroll(config_path, key_id, mode) {
        Ok(uri) => {
            print_enrolment(key_id, &uri, config_path);
            ExitCode::SUCCESS
        }
        Err((code, message)) => {
            eprintln!("paygated: {message}");
            ExitCode::from(code)
        }
    }
}

type Failure = (u8, String);

fn enroll(config_path: &Path, key_id: &str, mode: Mode) -> Result<Zeroizing<String>, Failure> {
    let config =
        Config::load(config_path).map_err(|e| (EXIT_CONFIG, format!("invalid config: {e}")))?;
    let key = config
        .api_keys
        .iter()
        .find(|k| k.id.get_ref() == key_id)
        .ok_or_else(|| {
            (
                EXIT_CONFIG,
                format!(
                    "{} has no [[api_keys]] entry with id \"{key_id}\"",
                    config_path.display()
                ),
            )
        })?;
    if key.role == crate::auth::Role::Pos {
        return Err((
            EXIT_CONFIG,
            format!("{key_id} is a pos key: authenticators are for erp and admin keys"),
        ));
    }
    match (mode, key.totp.is_some()) {
        (Mode::Enroll, true) => {
            return Err((
                EXIT_CONFIG,
                format!(
                    "{key_id} has an authenticator already; `paygated keys totp reset --key-id {key_id}` replaces it"
                ),
            ));
        }
        (Mode::Reset, false) => {
            return Err((
                EXIT_CONFIG,
                format!(
                    "{key_id} has no authenticator to reset; `paygated keys totp enroll --key-id {key_id}` gives it one"
                ),
            ));
        }
        _ => {}
    }
    let master = config
        .master_key()
        .map_err(|e| (EXIT_CONFIG, e))?
        .ok_or_else(|| {
            (
                EXIT_CONFIG,
                "the secret is sealed under the master key, and the config names none: set \
                 [onboarding] master_key (`paygated keys new-master` makes one)"
                    .to_owned(),
            )
        })?;
    let secret = Authenticator::generate_secret();
    let authenticator =
        Authenticator::new(key_id, &secret).map_err(|e| (EXIT_RUNTIME, e.to_string()))?;
    let sealed = master.seal(
        &totp_record_id(key_id),
        TOTP_FIELD,
        &Zeroizing::new(hex::encode(&*secret)),
    );
    let original = std::fs::read_to_string(config_path).map_err(|e| {
        (
            EXIT_RUNTIME,
            format!("cannot read {}: {e}", config_path.display()),
        )
    })?;
    let edited = with_totp(&original, key_id, &sealed)
        .map_err(|e| (EXIT_CONFIG, format!("{}: {e}", config_path.display())))?;
    replace_file(config_path, &edited).map_err(|e| {
        (
            EXIT_RUNTIME,
            format!("cannot write {}: {e}", config_path.display()),
        )
    })?;
    // What was written must load and open, or the old file comes back.
    let check = Config::load(config_path)
        .map_err(|e| e.to_string())
        .and_then(|c| c.key_ring().map(drop));
    if let Err(e) = check {
        let restored = match replace_file(config_path, &original) {
            Ok(()) => "the file is as it was".to_owned(),
            Err(restore) => format!(
                "restoring the file failed too ({restore}): check {} by hand",
                config_path.display()
            ),
        };
        return Err((
            EXIT_RUNTIME,
            format!("the edited config did not load ({e}); {restored}"),
        ));
    }
    Ok(authenticator.uri())
}

/// `text` with `totp = { key_id, nonce, ciphertext }` set in the `[[api_keys]]` entry of
/// `key_id` (replacing any there), everything else as it was.
fn with_totp(
    text: &str,
    key_id: &str,
    sealed: &crate::domain::records::Sealed,
) -> Result<String, String> {
    let mut document: toml_edit::DocumentMut =
        text.parse().map_err(|e| format!("not TOML: {e}"))?;
    let keys = document
        .get_mut("api_keys")
        .and_then(toml_edit::Item::as_array_of_tables_mut)
        .ok_or("no [[api_keys]] entries")?;
    let entry = keys
        .iter_mut()
        .find(|t| t.get("id").and_then(toml_edit::Item::as_str) == Some(key_id))
        .ok_or_else(|| format!("no [[api_keys]] entry with id \"{key_id}\""))?;
    entry.insert("totp", sealed_value(sealed));
    Ok(document.to_string())
}

/// `{ key_id = ..., nonce = ..., ciphertext = ... }`.
fn sealed_value(sealed: &crate::domain::records::Sealed) -> toml_edit::Item {
    let mut value = toml_edit::InlineTable::new();
    value.insert("key_id", sealed.key_id.as_str().into());
    value.insert("nonce", sealed.nonce.as_str().into());
    value.insert("ciphertext", sealed.ciphertext.as_str().into());
    toml_edit::value(value)
}

/// Re-seals every key's authenticator secret in the config file from `old` to `new` (the
/// config's part of `paygated keys rotate-master`); secrets already under `new` are left as
/// they are, so a rerun after an interruption is harmless. Returns how many changed.
pub fn reseal_config(
    config_path: &Path,
    old: &crate::merchants::sealed::MasterKey,
    new: &crate::merchants::sealed::MasterKey,
) -> Result<usize, String> {
    let text = std::fs::read_to_string(config_path)
        .map_err(|e| format!("cannot read {}: {e}", config_path.display()))?;
    let mut document: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e| format!("{}: not TOML: {e}", config_path.display()))?;
    let mut changed = 0;
    if let Some(keys) = document
        .get_mut("api_keys")
        .and_then(toml_edit::Item::as_array_of_tables_mut)
    {
        for entry in keys.iter_mut() {
            let Some(id) = entry
                .get("id")
                .and_then(toml_edit::Item::as_str)
                .map(str::to_owned)
            else {
                continue;
            };
            // Written inline by `enroll`, but an operator may have made it a table.
            let Some(table) = entry.get("totp").and_then(toml_edit::Item::as_table_like) else {
                continue;
            };
            let field = |name: &str| {
                table
                    .get(name)
                    .and_then(toml_edit::Item::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| format!("api key {id}: its totp has no {name}"))
            };
            let sealed = crate::domain::records::Sealed {
                key_id: field("key_id")?,
                nonce: field("nonce")?,
                ciphertext: field("ciphertext")?,
            };
            if sealed.key_id == new.id() {
                continue;
            }
            let plain = old.open(&totp_record_id(&id), TOTP_FIELD, &sealed)?;
            let resealed = new.seal(&totp_record_id(&id), TOTP_FIELD, &plain);
            entry.insert("totp", sealed_value(&resealed));
            changed += 1;
        }
    }
    if changed > 0 {
        replace_file(config_path, &document.to_string())
            .map_err(|e| format!("cannot write {}: {e}", config_path.display()))?;
    }
    Ok(changed)
}

/// Writes `text` to a temporary file beside `path` (a symlink's target: the link stays),
/// with `path`'s permissions, owner and group (an operator running this as root must not
/// leave the daemon's user unable to read its config), syncs it and renames it over the
/// file: a crash leaves the old file or the new one.
fn replace_file(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::MetadataExt;
    let path = std::fs::canonicalize(path)?;
    let dir = path.parent().unwrap_or(Path::new("/"));
    let metadata = std::fs::metadata(&path)?;
    let mut temp = tempfile::NamedTempFile::new_in(dir)?;
    std::fs::set_permissions(temp.path(), metadata.permissions())?;
    let made = temp.as_file().metadata()?;
    if (made.uid(), made.gid()) != (metadata.uid(), metadata.gid()) {
        rustix::fs::fchown(
            temp.as_file(),
            Some(rustix::fs::Uid::from_raw(metadata.uid())),
            Some(rustix::fs::Gid::from_raw(metadata.gid())),
        )
        .map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "cannot give the new file the config's owner {}:{} ({e}): run this as root or as that user",
                    metadata.uid(),
                    metadata.gid()
                ),
            )
        })?;
    }
    temp.write_all(text.as_bytes())?;
    temp.as_file().sync_all()?;
    temp.persist(&path).map_err(|e| e.error)?;
    // The new file is in place: a directory that cannot be synced only weakens the rename's
    // durability, it does not undo it, so it is said, not failed on.
    if let Err(e) = std::fs::File::open(dir).and_then(|d| d.sync_all()) {
        eprintln!(
            "paygated: warning: {} was replaced, but syncing its directory failed: {e}",
            path.display()
        );
    }
    Ok(())
}

fn print_enrolment(key_id: &str, uri: &str, config_path: &Path) {
    println!("Scan this with the authenticator app of the person who uses {key_id}:");
    println!();
    match QrCode::new(uri.as_bytes()) {
        Ok(code) => println!(
            "{}",
            code.render::<Dense1x2>()
                .dark_color(Dense1x2::Light)
                .light_color(Dense1x2::Dark)
                .quiet_zone(true)
                .build()
        ),
        Err(e) => println!("(no QR code: {e})"),
    }
    println!();
    println!("or enter it by hand:");
    println!("{uri}");
    println!();
    println!(
        "The secret is sealed under the master key in {}; it is shown only now.",
        config_path.display()
    );
    println!(
        "Reload the daemon to apply it (systemctl reload paygated, or kill -HUP its pid); from then on \
         the console's log-in and {key_id}'s sensitive operations need a code from the app."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "# keys\n[[api_keys]]\nid = \"key_pos\" # the till\nrole = \"pos\"\nsha256 = \"aa\"\n\n[[api_keys]]\nid = \"key_ops\"\nrole = \"admin\"\nsha256 = \"bb\"\n";

    fn sealed(n: &str) -> crate::domain::records::Sealed {
        crate::domain::records::Sealed {
            key_id: "k1".into(),
            nonce: n.into(),
            ciphertext: "cc".into(),
        }
    }

    #[test]
    fn the_secret_goes_into_its_keys_entry_and_nothing_else_changes() {
        let edited = with_totp(CONFIG, "key_ops", &sealed("n1")).unwrap();
        assert!(edited.starts_with("# keys\n[[api_keys]]\nid = \"key_pos\" # the till\n"));
        assert!(
            edited.ends_with(
                "sha256 = \"bb\"\ntotp = { key_id = \"k1\", nonce = \"n1\", ciphertext = \"cc\" }\n"
            ),
            "{edited}"
        );
        // A reset replaces it.
        let again = with_totp(&edited, "key_ops", &sealed("n2")).unwrap();
        assert_eq!(again.matches("totp =").count(), 1);
        assert!(again.contains("nonce = \"n2\""));
    }

    #[test]
    fn the_file_is_replaced_with_its_mode_and_a_link_keeps_pointing_at_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.toml");
        std::fs::write(&real, "old").unwrap();
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o640)).unwrap();
        let link = dir.path().join("paygate.toml");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        replace_file(&link, "new").unwrap();
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read_to_string(&real).unwrap(), "new");
        let mode = std::fs::metadata(&real).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        // Nothing left beside it.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn a_missing_key_or_a_broken_file_is_refused() {
        assert!(with_totp(CONFIG, "key_nobody", &sealed("n")).is_err());
        assert!(with_totp("[[api_keys]\n", "key_ops", &sealed("n")).is_err());
        assert!(with_totp("[server]\n", "key_ops", &sealed("n")).is_err());
    }
}
