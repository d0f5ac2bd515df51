//! `cargo xtask plugin new NAME [--dir DIR]`: a new wallet plugin crate from the template
//! (`xtask/template/`): the bundled plugins' layout (`flow`, `transform`, `settings`), a
//! README with each export's contract, a settings schema, unit tests that run, and a
//! `cassettes/kit.toml` for the plugin kit. `DIR` (default `NAME-wallet`) is relative to the
//! workspace root and must not exist or be empty; the crate is its own workspace and depends
//! on this checkout's `plugin-api` by path.

use std::fs;
use std::path::Path;

use crate::Result;

/// The template's files: where each goes, and its text with `{{...}}` placeholders.
const FILES: [(&str, &str); 8] = [
    ("Cargo.toml", include_str!("../template/Cargo.toml.in")),
    ("README.md", include_str!("../template/README.md.in")),
    (
        "settings.schema.json",
        include_str!("../template/settings.schema.json.in"),
    ),
    ("src/lib.rs", include_str!("../template/src/lib.rs.in")),
    ("src/flow.rs", include_str!("../template/src/flow.rs.in")),
    (
        "src/settings.rs",
        include_str!("../template/src/settings.rs.in"),
    ),
    (
        "src/transform.rs",
        include_str!("../template/src/transform.rs.in"),
    ),
    (
        "cassettes/kit.toml",
        include_str!("../template/cassettes/kit.toml.in"),
    ),
];

/// A provider name: what configs name it by (`[merchants.providers.NAME]`).
fn check_name(name: &str) -> Result<()> {
    let ok = (2..=32).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    ok.then_some(()).ok_or_else(|| {
        format!("plugin name {name:?}: 2-32 lowercase letters and digits, starting with a letter")
    })
}

/// `toypay` -> `Toypay`.
fn capitalized(name: &str) -> String {
    let mut chars = name.chars();
    chars
        .next()
        .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

pub fn plugin(args: &[String]) -> Result<()> {
    let usage = || "usage: cargo xtask plugin new NAME [--dir DIR]".to_owned();
    let (Some("new"), Some(name)) = (args.first().map(String::as_str), args.get(1)) else {
        return Err(usage());
    };
    check_name(name)?;
    let crate_name = format!("{name}-wallet");
    let dir = match (args.get(2).map(String::as_str), args.get(3)) {
        (None, _) => crate_name.clone(),
        (Some("--dir"), Some(dir)) => dir.clone(),
        _ => return Err(usage()),
    };
    let dir = Path::new(&dir);
    if dir.exists()
        && fs::read_dir(dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .next()
            .is_some()
    {
        return Err(format!("{} exists and is not empty", dir.display()));
    }
    let api = fs::canonicalize("plugin-api").map_err(|e| format!("plugin-api: {e}"))?;
    let replacements = [
        ("{{crate_file}}", crate_name.replace('-', "_")),
        ("{{crate}}", crate_name.clone()),
        ("{{Struct}}", capitalized(name)),
        ("{{display}}", capitalized(name)),
        ("{{name}}", name.clone()),
        ("{{api_path}}", api.display().to_string()),
    ];
    for (path, template) in FILES {
        let mut text = template.to_owned();
        for (placeholder, value) in &replacements {
            text = text.replace(placeholder, value);
        }
        let out = dir.join(path);
        if let Some(parent) = out.parent() {
            fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        fs::write(&out, text).map_err(|e| format!("{}: {e}", out.display()))?;
    }
    println!(
        "xtask: plugin {crate_name} (provider `{name}`) in {}\n\
         next: cd {0} && cargo test && cargo build --target wasm32-wasip2 --release\n\
         then: implement src/flow.rs and src/transform.rs, record cassettes, see its README.md",
        dir.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_name("toypay").is_ok());
        for bad in [
            "",
            "x",
            "Toy",
            "toy-pay",
            "1pay",
            "toy pay",
            &"a".repeat(33),
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert_eq!(capitalized("toypay"), "Toypay");
    }

    #[test]
    fn every_placeholder_is_known() {
        let known = [
            "crate_file",
            "crate",
            "Struct",
            "display",
            "name",
            "api_path",
        ];
        for (path, text) in FILES {
            for piece in text.split("{{").skip(1) {
                let placeholder = piece.split("}}").next().unwrap();
                assert!(
                    known.contains(&placeholder),
                    "{path}: {{{{{placeholder}}}}}"
                );
            }
        }
    }
}
