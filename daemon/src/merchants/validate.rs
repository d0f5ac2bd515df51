//! Validators for merchant onboarding data (mainland China).
//!
//! Every validator is a pure function that returns `Ok(())` or an error message for API
//! clients. The message says what is wrong and how to fix it; the caller names the field.
//! Messages never repeat the submitted value (these are personal and account data, and the
//! messages may end up in logs). Nothing is trimmed or case-folded: the API stores exactly
//! what it is given, so a value with spaces or lower-case letters is refused with a hint
//! rather than silently repaired. No validator panics, whatever the input (empty, huge,
//! non-ASCII, control characters).
//!
//! - [`unified_social_credit_code`]: the 18-character unified social credit code (统一社会信用代码)
//!   of GB 32100-2015: alphabet `0-9 A-H J-N P-R T U W-Y` (no I, O, S, V, Z), a known
//!   registration department code in position 1, digits (the administrative division code) in
//!   positions 3-8, and the GB/T 17710 (ISO 7064 style, modulus 31) check character in
//!   position 18.
//! - [`resident_identity_number`]: the 18-character citizen identity number (公民身份号码) of
//!   GB 11643-1999: 17 digits and a check character (digit or upper-case `X`), a real birth
//!   date in positions 7-14 between 1900-01-01 and today, and the ISO 7064 MOD 11-2 check
//!   character.
//! - [`bank_card_number`]: 12 to 19 digits passing the Luhn (ISO/IEC 7812-1) check.
//! - [`corporate_account_number`]: 8 to 30 digits; Chinese corporate (对公) account numbers
//!   have no common check digit, so only the shape is checked.
//! - [`mainland_mobile`]: 11 digits starting 13-19, optionally prefixed by `+86`.
//! - [`email`]: a pragmatic subset of RFC 5321/5322 addresses (see the function).
//! - [`mask`] and [`last4`] shorten values for display and logs.

/// Alphabet of the unified social credit code, in value order (GB 32100-2015, 4.2).
const USCC_ALPHABET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";

/// Weights of positions 1-17 of the unified social credit code (3^(i-1) mod 31).
const USCC_WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];

/// Registration department codes (登记管理部门代码), position 1 of the credit code.
///
/// GB 32100-2015 as published lists 1 (机构编制), 5 (民政), 9 (工商) and Y (其他). Codes
/// allotted since then and in use on issued codes are 2 (外交), 3 (司法行政), 4 (文化),
/// 6 (旅游), 7 (宗教), 8 (工会), A (中央军委改革和编制办公室) and N (农业); the published
/// code tables list `1-9, A, N, Y` (e.g. the GB 32100-2015 coding-rule summary reproduced at
/// https://blog.csdn.net/lh1424573495/article/details/108776492). The standard text itself
/// was not available to check, so this list follows those tables. The category code in
/// position 2 is deliberately not checked beyond the alphabet: its table differs per
/// department and has changed with those allotments; the check character still catches
/// any typo there.
const USCC_DEPARTMENTS: &[u8] = b"123456789ANY";

/// Weights of positions 1-17 of the identity number (2^(18-i) mod 11, GB 11643-1999).
const ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];

/// The character, quoted and escaped so that control characters stay readable.
fn shown(c: char) -> String {
    format!("'{}'", c.escape_debug())
}

/// Full-width forms (U+FF01..=U+FF5E) and the ideographic space, which Chinese input
/// methods produce when left in full-width mode.
fn is_full_width(c: char) -> bool {
    ('\u{FF01}'..='\u{FF5E}').contains(&c) || c == '\u{3000}'
}

/// Explains a character that has no place in a value of digits and letters. `position` is
/// 1-based; `allowed` completes "only ... are allowed".
fn unexpected_char(position: usize, c: char, allowed: &str) -> String {
    if is_full_width(c) {
        format!(
            "character {position} is the full-width {}; switch the input method to half-width \
             and type it again (only {allowed} are allowed)",
            shown(c)
        )
    } else if c.is_whitespace() {
        format!(
            "character {position} is a space or other blank; remove all spaces (only {allowed} \
             are allowed)"
        )
    } else if c.is_control() {
        format!(
            "character {position} is the control character {}; remove it",
            shown(c)
        )
    } else if c == '-' || c == '.' || c == '/' || c == '_' {
        format!(
            "character {position} is the separator {}; remove all separators (only {allowed} \
             are allowed)",
            shown(c)
        )
    } else {
        format!(
            "character {position} is {}; only {allowed} are allowed",
            shown(c)
        )
    }
}

/// Number of characters, counting at most `limit + 1` so that huge inputs cost little.
fn char_count_up_to(value: &str, limit: usize) -> usize {
    value.chars().take(limit.saturating_add(1)).count()
}

/// The check character for the first 17 characters of a unified social credit code, which
/// must all be in [`USCC_ALPHABET`] (`None` otherwise).
fn uscc_check_char(body: &[u8; 17]) -> Option<u8> {
    let mut sum = 0u32;
    for (&b, weight) in body.iter().zip(USCC_WEIGHTS) {
        let value = USCC_ALPHABET.iter().position(|&a| a == b)?;
        sum += u32::try_from(value).ok()? * weight;
    }
    // check = 31 - (sum mod 31), where 31 is written as '0'.
    let index = (31 - sum % 31) % 31;
    USCC_ALPHABET.get(usize::try_from(index).ok()?).copied()
}

/// Checks a unified social credit code (统一社会信用代码, GB 32100-2015).
///
/// 18 characters from `0-9` and the upper-case letters other than I, O, S, V and Z;
/// position 1 a registration department code (`1-9`, `A`, `N` or `Y`, see
/// [`USCC_DEPARTMENTS`]); positions 3-8 digits (the registering authority's administrative
/// division code, GB/T 2260; not looked up in the division table, which changes yearly);
/// position 18 the check character over positions 1-17.
pub fn unified_social_credit_code(code: &str) -> Result<(), String> {
    const ALLOWED: &str = "digits 0-9 and the upper-case letters A-Z except I, O, S, V and Z";
    if code.is_empty() {
        return Err(
            "is empty; give the 18-character code printed on the business licence, \
             e.g. 91350100M000100Y43"
                .into(),
        );
    }
    if code.chars().any(|c| c.is_ascii_lowercase())
        && code
            .chars()
            .all(|c| c.is_ascii() && USCC_ALPHABET.contains(&(c.to_ascii_uppercase() as u8)))
    {
        return Err(
            "contains lower-case letters; the code is written in upper case, send it exactly \
             as printed on the business licence, e.g. 91350100M000100Y43"
                .into(),
        );
    }
    for (i, c) in code.chars().enumerate() {
        let position = i + 1;
        if c.is_ascii() && USCC_ALPHABET.contains(&(c as u8)) {
            continue;
        }
        let upper = c.to_ascii_uppercase();
        let likely = match upper {
            'I' => Some("the digit 1"),
            'O' => Some("the digit 0"),
            'S' => Some("the digit 5"),
            'Z' => Some("the digit 2"),
            'V' => Some("the letter U or Y"),
            _ => None,
        };
        if let Some(likely) = likely {
            return Err(format!(
                "character {position} is the letter {}, which credit codes never use (there is \
                 no I, O, S, V or Z); it is probably {likely}",
                shown(c)
            ));
        }
        if c.is_ascii_lowercase() {
            return Err(format!(
                "character {position} is the lower-case {}; letters in the code are upper case",
                shown(c)
            ));
        }
        return Err(unexpected_char(position, c, ALLOWED));
    }
    // Every character is now one ASCII byte of the alphabet.
    let Ok(bytes) = <&[u8; 18]>::try_from(code.as_bytes()) else {
        let count = code.len();
        let hint = if count == 15 {
            "; a 15-digit business registration number (注册号) is not accepted, give the \
             unified social credit code from the current business licence"
        } else {
            ""
        };
        return Err(format!("must be exactly 18 characters, got {count}{hint}"));
    };
    if !USCC_DEPARTMENTS.contains(&bytes[0]) {
        return Err(
            "character 1 (registration department code) must be one of 1-9, A, N or Y; check \
             the code on the business licence"
                .into(),
        );
    }
    if let Some(i) = bytes[2..8].iter().position(|b| !b.is_ascii_digit()) {
        return Err(format!(
            "character {} is a letter, but characters 3-8 (administrative division code) are \
             digits; check the code on the business licence",
            i + 3
        ));
    }
    let Some((body, [check])) = bytes.split_first_chunk::<17>() else {
        return Err("must be exactly 18 characters".into());
    };
    if uscc_check_char(body) != Some(*check) {
        return Err(
            "has a wrong check character (the 18th character does not match the first 17): \
             a character was mistyped; copy the code again from the business licence"
                .into(),
        );
    }
    Ok(())
}

fn is_leap_year(year: i32) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// A calendar date written `YYYY-MM-DD` (years 1900-2199).
pub fn calendar_date(value: &str) -> Result<(), String> {
    let b = value.as_bytes();
    let shaped = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shaped {
        return Err("must be a date written YYYY-MM-DD".into());
    }
    let year = digits_value(&b[0..4]) as i32;
    let month = digits_value(&b[5..7]);
    let day = digits_value(&b[8..10]);
    if !(1900..=2199).contains(&year) || day == 0 || day > days_in_month(year, month) {
        return Err("is not a date of the calendar (YYYY-MM-DD)".into());
    }
    Ok(())
}

/// An administrative division code (行政区划代码, GB/T 2260): six digits, the first not 0.
pub fn area_code(code: &str) -> Result<(), String> {
    if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) && !code.starts_with('0') {
        Ok(())
    } else {
        Err("must be a 6-digit administrative division code (GB/T 2260), e.g. 440305".into())
    }
}

/// Value of ASCII digits (the caller has checked they are digits; at most 9 of them).
fn digits_value(digits: &[u8]) -> u32 {
    digits
        .iter()
        .fold(0, |acc, &d| acc * 10 + u32::from(d.wrapping_sub(b'0')))
}

/// The check character for the first 17 digits of an identity number (ISO 7064 MOD 11-2).
fn id_check_char(body: &[u8; 17]) -> u8 {
    let sum: u32 = body
        .iter()
        .zip(ID_WEIGHTS)
        .map(|(&d, weight)| u32::from(d.wrapping_sub(b'0')) * weight)
        .sum();
    match (12 - sum % 11) % 11 {
        10 => b'X',
        // 0..=9, so the cast cannot truncate.
        n => b'0' + n as u8,
    }
}

/// Checks a resident identity number (公民身份号码, GB 11643-1999).
///
/// 18 characters: 17 digits and a check character that is a digit or upper-case `X`;
/// positions 7-14 are the birth date `YYYYMMDD`, which must be a real calendar date from
/// 1900-01-01 up to and including `today` (`(year, month, day)`, passed in so that the result
/// does not depend on the clock); the check character is ISO 7064 MOD 11-2 over positions
/// 1-17. The address code (positions 1-6) is not looked up: its table changes yearly and
/// numbers keep the code of the place of first registration.
pub fn resident_identity_number(id: &str, today: (i32, u32, u32)) -> Result<(), String> {
    const ALLOWED: &str = "digits 0-9 and, as the last character, X";
    if id.is_empty() {
        return Err("is empty; give the 18-character number on the identity card".into());
    }
    for (i, c) in id.chars().enumerate() {
        if !(c.is_ascii_digit() || c == 'X' || c == 'x') {
            return Err(unexpected_char(i + 1, c, ALLOWED));
        }
    }
    // Every character is now one ASCII byte.
    let Ok(bytes) = <&[u8; 18]>::try_from(id.as_bytes()) else {
        let count = id.len();
        let hint = if count == 15 {
            "; 15-digit first-generation numbers are no longer valid, give the 18-character \
             number on the current identity card"
        } else {
            ""
        };
        return Err(format!("must be exactly 18 characters, got {count}{hint}"));
    };
    let Some((body, [check])) = bytes.split_first_chunk::<17>() else {
        return Err("must be exactly 18 characters".into());
    };
    if let Some(i) = body.iter().position(|b| !b.is_ascii_digit()) {
        return Err(format!(
            "character {} is an X; only the last character may be X, the first 17 are digits",
            i + 1
        ));
    }
    if *check == b'x' {
        return Err("ends in a lower-case 'x'; write it as an upper-case 'X'".into());
    }
    let year = i32::try_from(digits_value(&body[6..10])).unwrap_or(0);
    let month = digits_value(&body[10..12]);
    let day = digits_value(&body[12..14]);
    if !(1..=12).contains(&month) {
        return Err(
            "has an impossible birth date: characters 11-12 (birth month) must be 01 to 12; \
             check the number on the identity card"
                .into(),
        );
    }
    if day == 0 || day > days_in_month(year, month) {
        return Err(
            "has an impossible birth date: characters 13-14 (day of birth) are not a day of \
             that month; check the number on the identity card"
                .into(),
        );
    }
    if (year, month, day) < (1900, 1, 1) {
        return Err(
            "has a birth date (characters 7-14) before 1900-01-01; check the number on the \
             identity card"
                .into(),
        );
    }
    if (year, month, day) > today {
        return Err(
            "has a birth date (characters 7-14) in the future; check the number on the \
             identity card"
                .into(),
        );
    }
    if id_check_char(body) != *check {
        return Err(
            "has a wrong check character (the 18th character does not match the first 17): \
             a digit was mistyped; copy the number again from the identity card"
                .into(),
        );
    }
    Ok(())
}

/// Whether ASCII digits pass the Luhn check (the caller has checked they are digits).
fn luhn_valid(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d.wrapping_sub(b'0'));
            match (i % 2 == 1, d * 2) {
                (false, _) => d,
                (true, doubled) if doubled > 9 => doubled - 9,
                (true, doubled) => doubled,
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Shape checks shared by the number-only validators: non-empty, ASCII digits only,
/// `min..=max` of them. `what` names the value in the empty message.
fn digits_only(value: &str, min: usize, max: usize, what: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("is empty; give the {what} ({min} to {max} digits)"));
    }
    for (i, c) in value.chars().enumerate() {
        if !c.is_ascii_digit() {
            return Err(unexpected_char(i + 1, c, "the digits 0-9"));
        }
    }
    // All ASCII digits: bytes are characters.
    let count = value.len();
    if !(min..=max).contains(&count) {
        return Err(format!("must be {min} to {max} digits, got {count}"));
    }
    Ok(())
}

/// Checks a bank card number: 12 to 19 ASCII digits (ISO/IEC 7812-1 allows 8 to 19; cards
/// issued in China have 16 to 19) passing the Luhn check. No spaces or dashes.
pub fn bank_card_number(number: &str) -> Result<(), String> {
    digits_only(number, 12, 19, "card number")?;
    if !luhn_valid(number.as_bytes()) {
        return Err(
            "fails the card number check (Luhn): a digit was mistyped or two were swapped; \
             copy the number again from the card"
                .into(),
        );
    }
    Ok(())
}

/// Checks a corporate bank account number (对公账号): 8 to 30 ASCII digits. Chinese banks use
/// no common check digit for these, so only the shape is checked. No spaces or dashes.
pub fn corporate_account_number(number: &str) -> Result<(), String> {
    digits_only(number, 8, 30, "account number")
}

/// Checks a mainland China mobile number: 11 digits starting 13 to 19, optionally preceded
/// by the country code written exactly as `+86`. No spaces, dashes or brackets.
pub fn mainland_mobile(phone: &str) -> Result<(), String> {
    const FORM: &str = "write it as 11 digits, e.g. 13812345678, or with the country code as \
                        +8613812345678, without spaces or dashes";
    if phone.is_empty() {
        return Err(format!("is empty; {FORM}"));
    }
    let (offset, national) = match phone.strip_prefix("+86") {
        Some(rest) => (3, rest),
        None => (0, phone),
    };
    if national.starts_with('+') || (offset == 0 && phone.starts_with("00")) {
        return Err(format!(
            "only mainland China mobile numbers are accepted; the only country code allowed \
             is +86 ({FORM})"
        ));
    }
    for (i, c) in national.chars().enumerate() {
        if c.is_ascii_digit() {
            continue;
        }
        let position = i + 1 + offset;
        return Err(
            if c.is_whitespace() || matches!(c, '-' | '(' | ')' | '.' | '/') {
                format!(
                    "character {position} is a space or separator {}; {FORM}",
                    shown(c)
                )
            } else {
                unexpected_char(position, c, "digits and a leading +86")
            },
        );
    }
    // All ASCII digits: bytes are characters.
    let count = national.len();
    if count != 11 {
        let hint = if offset == 0 && count == 13 && national.starts_with("86") {
            "; write the country code as +86"
        } else {
            ""
        };
        return Err(format!(
            "must have 11 digits after the optional +86, got {count}{hint}; {FORM}"
        ));
    }
    let bytes = national.as_bytes();
    if bytes.first() != Some(&b'1') || !matches!(bytes.get(1), Some(b'3'..=b'9')) {
        return Err(format!(
            "is not a mainland mobile number: these start with 13 to 19; {FORM}"
        ));
    }
    Ok(())
}

/// Characters RFC 5322 allows unquoted in the local part (`atext`), besides letters, digits
/// and the dots between them.
const EMAIL_LOCAL_SPECIALS: &str = "!#$%&'*+-/=?^_`{|}~";

/// Checks an e-mail address, pragmatically (a subset of RFC 5321/5322 that mail systems
/// deliver to in practice):
///
/// - at most 254 characters, no whitespace or control characters, exactly one `@`;
/// - local part (before `@`): 1 to 64 characters of ASCII letters, digits and
///   ``!#$%&'*+-/=?^_`{|}~``, with dots only between other characters (no leading, trailing or
///   double dot); quoted local parts and non-ASCII (SMTPUTF8) local parts are refused;
/// - domain (after `@`): at least two dot-separated labels, each 1 to 63 of `A-Z a-z 0-9 -`
///   not starting or ending with `-`, and a top-level label that is not all digits (no IP
///   addresses). Internationalised domains are accepted in their ASCII `xn--` form only.
pub fn email(address: &str) -> Result<(), String> {
    if address.is_empty() {
        return Err("is empty; give an address such as finance@example.com".into());
    }
    if let Some((i, c)) = address
        .chars()
        .enumerate()
        .find(|(_, c)| c.is_whitespace() || c.is_control())
    {
        return Err(if c.is_whitespace() {
            format!("character {} is a space or other blank; remove it", i + 1)
        } else {
            format!(
                "character {} is the control character {}; remove it",
                i + 1,
                shown(c)
            )
        });
    }
    let count = char_count_up_to(address, 254);
    if count > 254 {
        return Err("is longer than 254 characters; give a shorter address".into());
    }
    let Some((local, domain)) = address.split_once('@') else {
        return Err("has no '@'; give an address such as finance@example.com".into());
    };
    if domain.contains('@') {
        return Err(
            "has more than one '@'; give a single address such as finance@example.com".into(),
        );
    }
    if local.is_empty() {
        return Err(
            "has nothing before the '@'; give an address such as finance@example.com".into(),
        );
    }
    if let Some(c) = local
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || c == '.' || EMAIL_LOCAL_SPECIALS.contains(c)))
    {
        return Err(if c.is_ascii() {
            format!(
                "the part before the '@' contains {}, which is not allowed there; use letters, \
                 digits, dots and {EMAIL_LOCAL_SPECIALS}",
                shown(c)
            )
        } else {
            format!(
                "the part before the '@' contains the non-ASCII character {}; give an address \
                 written in ASCII letters and digits",
                shown(c)
            )
        });
    }
    // ASCII from here on: bytes are characters.
    if local.len() > 64 {
        return Err(format!(
            "the part before the '@' must be at most 64 characters, got {}",
            local.len()
        ));
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err(
            "the part before the '@' must not start or end with a dot or contain two dots in \
             a row"
                .into(),
        );
    }
    if domain.is_empty() {
        return Err("has nothing after the '@'; give the domain, as in finance@example.com".into());
    }
    if let Some(c) = domain
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || c == '-' || c == '.'))
    {
        return Err(if c.is_ascii() {
            format!(
                "the domain (after the '@') contains {}; domains use only letters, digits, \
                 hyphens and dots",
                shown(c)
            )
        } else {
            format!(
                "the domain (after the '@') contains the non-ASCII character {}; give an \
                 internationalised domain in its ASCII form (starting xn--)",
                shown(c)
            )
        });
    }
    if !domain.contains('.') {
        return Err("the domain (after the '@') needs at least one dot, as in example.com".into());
    }
    for label in domain.split('.') {
        if label.is_empty() {
            return Err(
                "the domain (after the '@') must not start or end with a dot or contain two \
                 dots in a row"
                    .into(),
            );
        }
        if label.len() > 63 {
            return Err("a part of the domain (between dots) is longer than 63 characters".into());
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(
                "a part of the domain (between dots) starts or ends with a hyphen; hyphens \
                 may only appear inside a part"
                    .into(),
            );
        }
    }
    if domain
        .rsplit('.')
        .next()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(
            "the domain (after the '@') ends in a number; IP addresses are not accepted, give \
             a domain name such as example.com"
                .into(),
        );
    }
    Ok(())
}

/// Keeps the first `keep_start` and last `keep_end` characters of `value` and replaces each
/// character between them with `*` (so the length is unchanged):
/// `mask("110101199003074258", 4, 4) == "1101**********4258"`. When the value has no more
/// than `keep_start + keep_end` characters, every character is masked, so that a short value
/// is never shown whole. Works on characters, not bytes.
pub fn mask(value: &str, keep_start: usize, keep_end: usize) -> String {
    let count = value.chars().count();
    if count <= keep_start.saturating_add(keep_end) {
        return "*".repeat(count);
    }
    let hidden_end = count - keep_end;
    value
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if i < keep_start || i >= hidden_end {
                c
            } else {
                '*'
            }
        })
        .collect()
}

/// The last four characters of `value` (all of it when it is shorter), e.g. for "card
/// ending 1234". Works on characters, not bytes.
pub fn last4(value: &str) -> String {
    let start = value
        .char_indices()
        .rev()
        .nth(3)
        .map_or(0, |(index, _)| index);
    value[start..].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TODAY: (i32, u32, u32) = (2025, 6, 15);

    /// Deterministic pseudo-random numbers (Knuth's MMIX LCG), high bits only.
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> u32 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) as u32
        }

        fn below(&mut self, n: u32) -> u32 {
            self.next() % n
        }

        fn pick(&mut self, from: &[u8]) -> u8 {
            from[self.below(from.len() as u32) as usize]
        }
    }

    fn with_uscc_check(body: &str) -> String {
        let body: &[u8; 17] = body.as_bytes().try_into().unwrap();
        let check = uscc_check_char(body).unwrap();
        format!("{}{}", std::str::from_utf8(body).unwrap(), check as char)
    }

    fn with_id_check(body: &str) -> String {
        let body: &[u8; 17] = body.as_bytes().try_into().unwrap();
        format!(
            "{}{}",
            std::str::from_utf8(body).unwrap(),
            id_check_char(body) as char
        )
    }

    fn with_luhn_digit(body: &str) -> String {
        (b'0'..=b'9')
            .map(|d| format!("{body}{}", d as char))
            .find(|n| luhn_valid(n.as_bytes()))
            .unwrap()
    }

    fn replace_at(value: &str, index: usize, with: u8) -> String {
        let mut bytes = value.as_bytes().to_vec();
        bytes[index] = with;
        String::from_utf8(bytes).unwrap()
    }

    fn hostile_inputs() -> Vec<String> {
        vec![
            String::new(),
            "\0".into(),
            "\0".repeat(18),
            "1".repeat(1 << 20),
            "a".repeat(1 << 20),
            "１".repeat(1 << 20),
            "@".repeat(1 << 20),
            format!("{}@example.com", "a".repeat(1 << 20)),
            "１３８１２３４５６７８".into(),
            "９１３５０１００Ｍ０００１００Ｙ４３".into(),
            "110105１9491231002X".into(),
            "\u{FEFF}91350100M000100Y43".into(),
            "91350100M000100Y4\u{0301}".into(),
            "🦀".repeat(18),
            "ß".repeat(18),
            "+86".into(),
            "+".into(),
            "@".into(),
            ".".into(),
            "a@".into(),
            "@a".into(),
            "x".into(),
        ]
    }

    // ---- unified social credit code ----

    /// Codes published as examples or from public registrations, found in public code
    /// (validator test suites and documentation); each checked against an independent
    /// implementation of the GB 32100-2015 check character before being listed here.
    const USCC_VALID: &[&str] = &[
        "91350100M000100Y43", // the example most validator libraries cite
        "91310115591693856A", // hutool CreditCodeUtilTest
        "91310110666007217T", // hutool CreditCodeUtilTest
        "91440300708461136T",
        "91110108551385082Q",
        "91110105306652183Y",
        "91110000802100433B",
        "91440300359143307G",
        "51610700305332460K", // 民政: social organisation
        "112302070019030687", // 机构编制: government body
        "11610923MB2900168E", // 机构编制, letters in the body
        "1134082855783407XL", // 机构编制
        "91341000MA2N0ABGXX", // letters almost everywhere
        "911101077776591113", // check character computed as a digit
    ];

    #[test]
    fn uscc_published_examples_are_valid() {
        for code in USCC_VALID {
            assert_eq!(unified_social_credit_code(code), Ok(()), "{code}");
        }
    }

    #[test]
    fn uscc_check_char_is_zero_when_sum_is_multiple_of_31() {
        // Find a body whose weighted sum is a multiple of 31: its check character is '0'.
        let mut rng = Lcg(7);
        let found = (0..100_000).find_map(|_| {
            let mut body = *b"91110000000000000";
            for b in &mut body[8..] {
                *b = rng.pick(USCC_ALPHABET);
            }
            (uscc_check_char(&body) == Some(b'0')).then_some(body)
        });
        let body = found.expect("some body has check character 0");
        let code = format!("{}0", std::str::from_utf8(&body).unwrap());
        assert_eq!(unified_social_credit_code(&code), Ok(()));
    }

    #[test]
    fn uscc_every_single_character_corruption_is_refused() {
        for code in USCC_VALID {
            for index in 0..18 {
                for &other in USCC_ALPHABET {
                    if other == code.as_bytes()[index] {
                        continue;
                    }
                    let corrupted = replace_at(code, index, other);
                    assert!(
                        unified_social_credit_code(&corrupted).is_err(),
                        "{corrupted} (from {code}) accepted"
                    );
                }
            }
        }
    }

    #[test]
    fn uscc_every_wrong_check_character_is_reported_as_such() {
        for code in USCC_VALID {
            for &other in USCC_ALPHABET {
                if other == code.as_bytes()[17] {
                    continue;
                }
                let corrupted = replace_at(code, 17, other);
                let err = unified_social_credit_code(&corrupted).unwrap_err();
                assert!(err.contains("check character"), "{corrupted}: {err}");
            }
        }
    }

    #[test]
    fn uscc_known_nonconforming_codes_are_refused() {
        // Published as issued by an early pilot region but not conforming to the standard
        // (hutool CreditCodeUtilTest, after github.com/bluesky335/IDCheck).
        assert!(unified_social_credit_code("91350211M00013FA1N").is_err());
        // Quoted online as examples, but their check characters do not match.
        assert!(unified_social_credit_code("91350200M000000510").is_err());
        assert!(unified_social_credit_code("91350128M00000019A").is_err());
    }

    #[test]
    fn uscc_property_computed_check_character_validates_and_no_other_does() {
        let mut rng = Lcg(0x5EED_0001);
        for _ in 0..10_000 {
            let mut body = [0u8; 17];
            body[0] = rng.pick(USCC_DEPARTMENTS);
            body[1] = rng.pick(USCC_ALPHABET);
            for b in &mut body[2..8] {
                *b = rng.pick(b"0123456789");
            }
            for b in &mut body[8..] {
                *b = rng.pick(USCC_ALPHABET);
            }
            let body = std::str::from_utf8(&body).unwrap();
            let code = with_uscc_check(body);
            assert_eq!(unified_social_credit_code(&code), Ok(()), "{code}");
            let good = code.as_bytes()[17];
            for &other in USCC_ALPHABET.iter().filter(|&&b| b != good) {
                let bad = format!("{body}{}", other as char);
                assert!(unified_social_credit_code(&bad).is_err(), "{bad} accepted");
            }
        }
    }

    #[test]
    fn uscc_lengths() {
        let err = unified_social_credit_code("").unwrap_err();
        assert!(err.contains("empty"), "{err}");
        let code = USCC_VALID[0];
        assert!(
            unified_social_credit_code(&code[..17])
                .unwrap_err()
                .contains("got 17")
        );
        let long = format!("{code}0");
        assert!(
            unified_social_credit_code(&long)
                .unwrap_err()
                .contains("got 19")
        );
        assert!(
            unified_social_credit_code("1")
                .unwrap_err()
                .contains("got 1")
        );
        let err = unified_social_credit_code("350100400012345").unwrap_err();
        assert!(err.contains("15-digit"), "{err}");
    }

    #[test]
    fn uscc_lowercase_is_refused_with_upper_case_hint() {
        let err = unified_social_credit_code("91350100m000100y43").unwrap_err();
        assert!(err.contains("upper case"), "{err}");
        let err = unified_social_credit_code(&"91341000MA2N0ABGXX".to_lowercase()).unwrap_err();
        assert!(err.contains("upper case"), "{err}");
    }

    #[test]
    fn uscc_excluded_letters_and_other_characters() {
        for (letter, hint) in [('I', "1"), ('O', "0"), ('S', "5"), ('Z', "2"), ('V', "U")] {
            let code = format!("91350100M000100Y4{letter}");
            let err = unified_social_credit_code(&code).unwrap_err();
            assert!(err.contains("never use") && err.contains(hint), "{err}");
            let lower = format!("91350100M000100Y4{}", letter.to_ascii_lowercase());
            let err = unified_social_credit_code(&lower).unwrap_err();
            assert!(err.contains("never use") && err.contains(hint), "{err}");
        }
        let err = unified_social_credit_code("91350100M000100Y4 3").unwrap_err();
        assert!(
            err.contains("character 18") && err.contains("space"),
            "{err}"
        );
        let err = unified_social_credit_code("91350100-M000100Y43").unwrap_err();
        assert!(err.contains("separator"), "{err}");
        let err = unified_social_credit_code("９1350100M000100Y43").unwrap_err();
        assert!(
            err.contains("full-width") && err.contains("character 1"),
            "{err}"
        );
        let err = unified_social_credit_code("91350100M000100Y4\0").unwrap_err();
        assert!(err.contains("control") && err.contains("\\0"), "{err}");
    }

    #[test]
    fn uscc_structure() {
        // Department codes: all listed ones are accepted, others refused.
        for &dept in USCC_ALPHABET {
            let code = with_uscc_check(&format!("{}1350100M000100Y4", dept as char));
            let result = unified_social_credit_code(&code);
            assert_eq!(
                result.is_ok(),
                USCC_DEPARTMENTS.contains(&dept),
                "{code}: {result:?}"
            );
        }
        // A letter in the administrative division code, even with a matching check char.
        let code = with_uscc_check("9135A100M000100Y4");
        let err = unified_social_credit_code(&code).unwrap_err();
        assert!(err.contains("character 5") && err.contains("3-8"), "{err}");
    }

    // ---- resident identity number ----

    #[test]
    fn id_published_examples() {
        // GB 11643-1999's own example (female, born 1949-12-31).
        assert_eq!(
            resident_identity_number("11010519491231002X", TODAY),
            Ok(())
        );
        // Test numbers widely used in public code; check digits verified independently.
        assert_eq!(
            resident_identity_number("110101199003074258", TODAY),
            Ok(())
        );
        assert_eq!(
            resident_identity_number("110101199003077555", TODAY),
            Ok(())
        );
        assert_eq!(
            resident_identity_number("11010119900307803X", TODAY),
            Ok(())
        );
        // The standard's other example is born in 1880: its check digit is right, but
        // births before 1900 are refused.
        assert_eq!(id_check_char(b"44052418800101001"), b'4');
        let err = resident_identity_number("440524188001010014", TODAY).unwrap_err();
        assert!(err.contains("1900"), "{err}");
    }

    #[test]
    fn id_every_single_character_corruption_is_refused() {
        for id in [
            "11010519491231002X",
            "110101199003074258",
            "11010119900307803X",
        ] {
            for index in 0..18 {
                for &other in b"0123456789X" {
                    if other == id.as_bytes()[index] {
                        continue;
                    }
                    let corrupted = replace_at(id, index, other);
                    assert!(
                        resident_identity_number(&corrupted, TODAY).is_err(),
                        "{corrupted} accepted"
                    );
                }
            }
        }
    }

    #[test]
    fn id_lowercase_x_is_refused_with_hint() {
        let err = resident_identity_number("11010519491231002x", TODAY).unwrap_err();
        assert!(err.contains("upper-case 'X'"), "{err}");
        let err = resident_identity_number("1101051949123100X2", TODAY).unwrap_err();
        assert!(
            err.contains("character 17") && err.contains("last"),
            "{err}"
        );
        let err = resident_identity_number("x10105194912310022", TODAY).unwrap_err();
        assert!(err.contains("character 1"), "{err}");
    }

    #[test]
    fn id_birth_dates() {
        let id = |date: &str| with_id_check(&format!("110105{date}123"));
        // Leap days.
        assert_eq!(resident_identity_number(&id("19960229"), TODAY), Ok(()));
        assert_eq!(resident_identity_number(&id("20000229"), TODAY), Ok(()));
        for date in ["19970229", "19000229", "21000229", "19960230"] {
            let err = resident_identity_number(&id(date), (2200, 1, 1)).unwrap_err();
            assert!(err.contains("impossible"), "{date}: {err}");
        }
        // Impossible months and days.
        for date in [
            "19901301", "19900001", "19900100", "19900431", "19900132", "19909999",
        ] {
            let err = resident_identity_number(&id(date), TODAY).unwrap_err();
            assert!(err.contains("impossible"), "{date}: {err}");
        }
        // Month ends.
        for date in ["19900131", "19900430", "19901231", "19900228"] {
            assert_eq!(resident_identity_number(&id(date), TODAY), Ok(()), "{date}");
        }
        // Range: 1900-01-01 up to and including today.
        assert_eq!(resident_identity_number(&id("19000101"), TODAY), Ok(()));
        let err = resident_identity_number(&id("18991231"), TODAY).unwrap_err();
        assert!(err.contains("before 1900"), "{err}");
        let err = resident_identity_number(&id("00000101"), TODAY).unwrap_err();
        assert!(err.contains("before 1900"), "{err}");
        assert_eq!(resident_identity_number(&id("20250615"), TODAY), Ok(()));
        for date in ["20250616", "20250701", "20260101", "99991231"] {
            let err = resident_identity_number(&id(date), TODAY).unwrap_err();
            assert!(err.contains("future"), "{date}: {err}");
        }
        // A nonsensical `today` must not panic.
        let _ = resident_identity_number(&id("19900101"), (i32::MIN, u32::MAX, 0));
    }

    #[test]
    fn id_lengths_and_characters() {
        assert!(
            resident_identity_number("", TODAY)
                .unwrap_err()
                .contains("empty")
        );
        let err = resident_identity_number("11010519491231002", TODAY).unwrap_err();
        assert!(err.contains("got 17"), "{err}");
        let err = resident_identity_number("11010519491231002X0", TODAY).unwrap_err();
        assert!(err.contains("got 19"), "{err}");
        let err = resident_identity_number("110105491231002", TODAY).unwrap_err();
        assert!(err.contains("first-generation"), "{err}");
        let err = resident_identity_number("110105 19491231002X", TODAY).unwrap_err();
        assert!(
            err.contains("character 7") && err.contains("space"),
            "{err}"
        );
        let err = resident_identity_number("11010519491231002Ｘ", TODAY).unwrap_err();
        assert!(err.contains("full-width"), "{err}");
        let err = resident_identity_number("110105194912310020\0", TODAY).unwrap_err();
        assert!(err.contains("control"), "{err}");
    }

    #[test]
    fn id_property_computed_check_character_validates_and_no_other_does() {
        let mut rng = Lcg(0x5EED_0002);
        for _ in 0..10_000 {
            let year = 1900 + rng.below(126) as i32;
            let month = 1 + rng.below(12);
            let day = 1 + rng.below(days_in_month(year, month));
            let area = rng.below(1_000_000);
            let sequence = rng.below(1000);
            let body = format!("{area:06}{year:04}{month:02}{day:02}{sequence:03}");
            let id = with_id_check(&body);
            assert_eq!(
                resident_identity_number(&id, (2025, 12, 31)),
                Ok(()),
                "{id}"
            );
            let good = id.as_bytes()[17];
            for &other in b"0123456789X".iter().filter(|&&b| b != good) {
                let bad = format!("{body}{}", other as char);
                assert!(
                    resident_identity_number(&bad, (2025, 12, 31)).is_err(),
                    "{bad}"
                );
            }
        }
    }

    // ---- bank card number ----

    /// Published test card numbers (Stripe and Braintree test cards).
    const CARDS_VALID: &[&str] = &[
        "4111111111111111",    // Visa
        "4242424242424242",    // Visa
        "5555555555554444",    // Mastercard
        "378282246310005",     // American Express, 15 digits
        "6011111111111117",    // Discover
        "3530111333300000",    // JCB
        "6200000000000005",    // UnionPay (Stripe)
        "6200000000000047",    // UnionPay debit (Stripe)
        "6205500000000000004", // UnionPay, 19 digits (Stripe)
        "6212345678901232",    // UnionPay credit (Braintree)
        "6212345678901265",    // UnionPay debit (Braintree)
        "621234567890000002",  // UnionPay, 18 digits (Braintree)
    ];

    #[test]
    fn card_published_test_numbers_are_valid() {
        for number in CARDS_VALID {
            assert_eq!(bank_card_number(number), Ok(()), "{number}");
        }
    }

    #[test]
    fn card_every_single_digit_corruption_is_refused() {
        for number in CARDS_VALID {
            for index in 0..number.len() {
                for other in b'0'..=b'9' {
                    if other == number.as_bytes()[index] {
                        continue;
                    }
                    let corrupted = replace_at(number, index, other);
                    let err = bank_card_number(&corrupted).unwrap_err();
                    assert!(err.contains("Luhn"), "{corrupted}: {err}");
                }
            }
        }
    }

    #[test]
    fn card_luhn_failures() {
        // Often quoted as a UnionPay example, but it fails the Luhn check.
        assert!(bank_card_number("6222020200112345672").is_err());
        assert!(bank_card_number("4111111111111112").is_err());
        // Adjacent transposition.
        assert!(bank_card_number("4111111111111111".replacen("41", "14", 1).as_str()).is_err());
    }

    #[test]
    fn card_lengths_and_characters() {
        let twelve = with_luhn_digit("62000000000");
        let nineteen = with_luhn_digit("620000000000000000");
        assert_eq!(twelve.len(), 12);
        assert_eq!(nineteen.len(), 19);
        assert_eq!(bank_card_number(&twelve), Ok(()));
        assert_eq!(bank_card_number(&nineteen), Ok(()));
        let eleven = with_luhn_digit("6200000000");
        let twenty = with_luhn_digit("6200000000000000000");
        assert!(bank_card_number(&eleven).unwrap_err().contains("got 11"));
        assert!(bank_card_number(&twenty).unwrap_err().contains("got 20"));
        assert!(bank_card_number("").unwrap_err().contains("empty"));
        let err = bank_card_number("4111 1111 1111 1111").unwrap_err();
        assert!(
            err.contains("character 5") && err.contains("space"),
            "{err}"
        );
        let err = bank_card_number("4111-1111-1111-1111").unwrap_err();
        assert!(err.contains("separator"), "{err}");
        let err = bank_card_number("４111111111111111").unwrap_err();
        assert!(err.contains("full-width"), "{err}");
        let err = bank_card_number("411111111111111\0").unwrap_err();
        assert!(err.contains("control"), "{err}");
        // Other Unicode decimal digits are not ASCII digits.
        assert!(bank_card_number("٤١١١١١١١١١١١١١١١").is_err());
    }

    // ---- corporate account number ----

    #[test]
    fn corporate_account_lengths_and_characters() {
        assert_eq!(corporate_account_number("12345678"), Ok(()));
        assert_eq!(corporate_account_number("110060149018000184013"), Ok(()));
        assert_eq!(corporate_account_number(&"9".repeat(30)), Ok(()));
        assert_eq!(corporate_account_number(&"0".repeat(8)), Ok(()));
        assert!(
            corporate_account_number("1234567")
                .unwrap_err()
                .contains("got 7")
        );
        let err = corporate_account_number(&"9".repeat(31)).unwrap_err();
        assert!(err.contains("8 to 30") && err.contains("got 31"), "{err}");
        assert!(corporate_account_number("").unwrap_err().contains("empty"));
        assert!(
            corporate_account_number("1100 6014 9018")
                .unwrap_err()
                .contains("space")
        );
        assert!(
            corporate_account_number("11006014901A")
                .unwrap_err()
                .contains("'A'")
        );
        assert!(
            corporate_account_number("１２３４５６７８")
                .unwrap_err()
                .contains("full-width")
        );
    }

    // ---- mainland mobile ----

    #[test]
    fn mobile_valid() {
        for phone in [
            "13812345678",
            "14712345678",
            "15012345678",
            "16612345678",
            "17712345678",
            "18612345678",
            "19912345678",
            "+8613812345678",
            "+8619912345678",
        ] {
            assert_eq!(mainland_mobile(phone), Ok(()), "{phone}");
        }
    }

    #[test]
    fn mobile_invalid() {
        for (phone, expect) in [
            ("", "empty"),
            ("1381234567", "got 10"),
            ("138123456789", "got 12"),
            ("+861381234567", "got 10"),
            ("12812345678", "13 to 19"),
            ("10012345678", "13 to 19"),
            ("23812345678", "13 to 19"),
            ("+8612812345678", "13 to 19"),
            ("8613812345678", "write the country code as +86"),
            ("008613812345678", "only mainland"),
            ("+85291234567", "only mainland"),
            ("+1 2025550123", "only mainland"),
            ("+86+8613812345678", "only mainland"),
            ("+86 13812345678", "character 4"),
            ("138-1234-5678", "without spaces or dashes"),
            ("(138)12345678", "without spaces or dashes"),
            ("138 1234 5678", "without spaces or dashes"),
            ("１３８１２３４５６７８", "full-width"),
            ("＋8613812345678", "full-width"),
            ("1381234567\0", "control"),
            ("+86", "got 0"),
            ("+", "only mainland"),
        ] {
            let err = mainland_mobile(phone).unwrap_err();
            assert!(err.contains(expect), "{phone:?}: {err}");
        }
    }

    // ---- e-mail ----

    #[test]
    fn email_valid() {
        let local64 = "a".repeat(64);
        let label63 = "b".repeat(63);
        // 64 + 1 + 63 + 1 + 63 + 1 + 61 = 254
        let longest = format!("{local64}@{label63}.{label63}.{}", "c".repeat(61));
        assert_eq!(longest.len(), 254);
        for address in [
            "finance@example.com",
            "a@b.co",
            "first.last+tag@sub.example.com.cn",
            "x_y-z!#$%&'*/=?^`{|}~@example.com",
            "UPPER@EXAMPLE.COM",
            "a@xn--fiqs8s.cn",
            "a@my-domain.example",
            "a@1.example",
            &format!("{local64}@example.com"),
            &format!("a@{label63}.com"),
            &longest,
        ] {
            assert_eq!(email(address), Ok(()), "{address}");
        }
    }

    #[test]
    fn email_invalid() {
        let local65 = "a".repeat(65);
        let label64 = "b".repeat(64);
        let too_long = format!(
            "{}@{}.{}.{}",
            "a".repeat(64),
            "b".repeat(63),
            "b".repeat(63),
            "c".repeat(62)
        );
        assert_eq!(too_long.len(), 255);
        for (address, expect) in [
            ("", "empty"),
            ("finance.example.com", "no '@'"),
            ("a@b@example.com", "more than one"),
            ("@example.com", "nothing before"),
            ("a@", "nothing after"),
            ("a@localhost", "at least one dot"),
            ("a@.example.com", "dot"),
            ("a@example.com.", "dot"),
            ("a@example..com", "dot"),
            ("a@-example.com", "hyphen"),
            ("a@example-.com", "hyphen"),
            ("a@example.-com", "hyphen"),
            ("a@example_x.com", "'_'"),
            ("a@192.168.0.1", "IP addresses"),
            ("a@[192.168.0.1]", "'['"),
            ("a@例子.中国", "xn--"),
            ("用户@example.com", "non-ASCII"),
            ("\"a b\"@example.com", "space"),
            ("\"ab\"@example.com", "contains '\\\"'"),
            ("a,b@example.com", "','"),
            (".a@example.com", "dot"),
            ("a.@example.com", "dot"),
            ("a..b@example.com", "dot"),
            ("a @example.com", "space"),
            (" a@example.com", "character 1"),
            ("a@example.com ", "space"),
            ("a@example.com\n", "blank"),
            ("a\0@example.com", "control"),
            ("a@exam\tple.com", "blank"),
            ("a\u{3000}@example.com", "blank"),
            ("ａ@example.com", "non-ASCII"),
            (&format!("{local65}@example.com"), "at most 64"),
            (&format!("a@{label64}.com"), "63"),
            (&too_long, "254"),
        ] {
            let err = email(address).unwrap_err();
            assert!(err.contains(expect), "{address:?}: {err}");
        }
    }

    // ---- mask and last4 ----

    #[test]
    fn mask_examples() {
        assert_eq!(mask("110101199003074258", 4, 4), "1101**********4258");
        assert_eq!(mask("6200000000000005", 6, 4), "620000******0005");
        assert_eq!(mask("13812345678", 3, 4), "138****5678");
        assert_eq!(mask("abcdefghi", 4, 4), "abcd*fghi");
        assert_eq!(mask("abcdefgh", 4, 4), "********");
        assert_eq!(mask("abc", 4, 4), "***");
        assert_eq!(mask("", 4, 4), "");
        assert_eq!(mask("abc", 0, 0), "***");
        assert_eq!(mask("abcd", 1, 0), "a***");
        assert_eq!(mask("abcd", 0, 1), "***d");
        assert_eq!(mask("abcd", usize::MAX, usize::MAX), "****");
        assert_eq!(mask("abcd", usize::MAX, 0), "****");
        // Characters, not bytes.
        assert_eq!(mask("张三丰先生", 1, 1), "张***生");
        assert_eq!(mask("🦀🦀🦀🦀🦀", 2, 2), "🦀🦀*🦀🦀");
        assert_eq!(mask("１２３４５６７８９", 2, 2), "１２*****８９");
    }

    #[test]
    fn last4_examples() {
        assert_eq!(last4("6200000000000005"), "0005");
        assert_eq!(last4("1234"), "1234");
        assert_eq!(last4("123"), "123");
        assert_eq!(last4(""), "");
        assert_eq!(last4("张三丰先生"), "三丰先生");
        assert_eq!(last4("ab🦀c🦀"), "b🦀c🦀");
        assert_eq!(last4("e\u{301}e\u{301}"), "e\u{301}e\u{301}");
    }

    // ---- hostile input ----

    #[test]
    fn hostile_inputs_never_panic_and_are_refused() {
        for input in hostile_inputs() {
            assert!(unified_social_credit_code(&input).is_err());
            assert!(resident_identity_number(&input, TODAY).is_err());
            assert!(bank_card_number(&input).is_err());
            assert!(mainland_mobile(&input).is_err());
            assert!(email(&input).is_err());
            let short = input.chars().count() < 8;
            let digits = input.bytes().all(|b| b.is_ascii_digit());
            assert_eq!(
                corporate_account_number(&input).is_ok(),
                digits && !short && input.len() <= 30
            );
            let masked = mask(&input, 4, 4);
            assert_eq!(masked.chars().count(), input.chars().count());
            assert!(last4(&input).chars().count() <= 4);
        }
    }

    #[test]
    fn error_messages_stay_short_and_do_not_echo_the_value() {
        let huge = "7".repeat(1 << 20);
        for err in [
            unified_social_credit_code(&huge),
            resident_identity_number(&huge, TODAY),
            bank_card_number(&huge),
            corporate_account_number(&huge),
            mainland_mobile(&huge),
            email(&format!("{huge}@example.com")),
        ] {
            let err = err.unwrap_err();
            assert!(err.len() < 400, "{err}");
            assert!(!err.contains("7777"), "{err}");
        }
        let err = resident_identity_number("11010519491231002Y", TODAY).unwrap_err();
        assert!(!err.contains("110105"), "{err}");
        let err = bank_card_number("4111111111111112").unwrap_err();
        assert!(!err.contains("4111"), "{err}");
    }
}
