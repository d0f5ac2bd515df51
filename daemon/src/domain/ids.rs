//! Object ids (API.md §1): a type prefix, then 9 base62 characters of milliseconds since the
//! Unix epoch and 17 of 96 random bits. Fixed width, so ids of one type sort by creation
//! time, which cursor pagination relies on. At most 30 characters with a 4-character prefix,
//! within the providers' 32-character limit for order and refund numbers.

use std::time::{SystemTime, UNIX_EPOCH};

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const TIME_CHARS: usize = 9; // 62^9 > 2^48
const RANDOM_CHARS: usize = 17; // 62^17 > 2^96

/// A new id such as `pay_0Fq3...`; `prefix` is given without the underscore.
pub fn new_id(prefix: &str) -> String {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let mut id = String::with_capacity(prefix.len() + 1 + TIME_CHARS + RANDOM_CHARS);
    id.push_str(prefix);
    id.push('_');
    push_base62(&mut id, millis & ((1 << 48) - 1), TIME_CHARS);
    push_base62(&mut id, random_u128() >> 32, RANDOM_CHARS);
    id
}

/// The smallest id of type `prefix` that can be made at `millis`: every id made before it
/// sorts below it (a bound for pages of ids by time).
pub fn first_id_at(prefix: &str, millis: i64) -> String {
    let mut id = String::with_capacity(prefix.len() + 1 + TIME_CHARS + RANDOM_CHARS);
    id.push_str(prefix);
    id.push('_');
    push_base62(
        &mut id,
        (millis.max(0) as u128) & ((1 << 48) - 1),
        TIME_CHARS,
    );
    id.push_str(&"0".repeat(RANDOM_CHARS));
    id
}

/// `len` base62 characters drawn from the OS random source.
pub fn random_base62(len: usize) -> String {
    let mut out = String::with_capacity(len);
    while out.len() < len {
        let mut bytes = [0u8; 64];
        fill_random(&mut bytes);
        // Rejection sampling keeps every character equally likely: 248 = 4 * 62.
        out.extend(
            bytes
                .iter()
                .filter(|&&b| b < 248)
                .map(|&b| ALPHABET[usize::from(b % 62)] as char)
                .take(len - out.len()),
        );
    }
    out
}

fn push_base62(out: &mut String, mut value: u128, width: usize) {
    let mut digits = vec![b'0'; width];
    for slot in digits.iter_mut().rev() {
        *slot = ALPHABET[(value % 62) as usize];
        value /= 62;
    }
    debug_assert_eq!(value, 0, "value does not fit in {width} base62 digits");
    out.push_str(std::str::from_utf8(&digits).expect("base62 is ASCII"));
}

/// 128 bits from the OS random source, taken from a per-thread buffer that is refilled
/// every 16 draws: one `getrandom` call per id cost ~1.5 % of a payment's CPU
/// (BENCHMARKS.md, "What was tried"). Each draw is used once.
fn random_u128() -> u128 {
    const DRAWS: usize = 16;
    thread_local! {
        static POOL: std::cell::RefCell<([[u8; 16]; DRAWS], usize)> =
            const { std::cell::RefCell::new(([[0; 16]; DRAWS], DRAWS)) };
    }
    POOL.with_borrow_mut(|(draws, used)| {
        if *used == DRAWS {
            fill_random(draws.as_flattened_mut());
            *used = 0;
        }
        *used += 1;
        u128::from_le_bytes(draws[*used - 1])
    })
}

fn fill_random(bytes: &mut [u8]) {
    // Without randomness no id or key is safe to hand out; there is nothing to fall back to.
    getrandom::fill(bytes).expect("the operating system's random source failed");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_id_at_a_time_bounds_the_ids_made_before_and_after() {
        let before = new_id("pay");
        std::thread::sleep(std::time::Duration::from_millis(2));
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let bound = first_id_at("pay", now);
        std::thread::sleep(std::time::Duration::from_millis(2));
        let after = new_id("pay");
        assert!(before < bound && bound <= after, "{before} {bound} {after}");
        assert_eq!(bound.len(), after.len());
    }

    #[test]
    fn ids_have_the_documented_shape() {
        let id = new_id("pay");
        assert_eq!(id.len(), 4 + TIME_CHARS + RANDOM_CHARS);
        assert!(id.len() <= 32);
        assert!(id.starts_with("pay_"));
        assert!(id[4..].bytes().all(|b| b.is_ascii_alphanumeric()));
    }

    #[test]
    fn ids_sort_by_creation_time() {
        let first = new_id("evt");
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = new_id("evt");
        assert!(first[..4 + TIME_CHARS] < second[..4 + TIME_CHARS]);
        assert!(first < second);
    }

    #[test]
    fn random_part_differs() {
        let ids: std::collections::HashSet<_> = (0..1000).map(|_| new_id("re")).collect();
        assert_eq!(ids.len(), 1000);
    }

    #[test]
    fn base62_is_fixed_width() {
        let mut s = String::new();
        push_base62(&mut s, 0, 5);
        push_base62(&mut s, 61, 2);
        assert_eq!(s, "000000z");
        let mut max = String::new();
        push_base62(&mut max, (1u128 << 96) - 1, RANDOM_CHARS);
        assert_eq!(max.len(), RANDOM_CHARS);
    }
}
