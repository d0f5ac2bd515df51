//! A small reader of ASN.1 BER, enough for Apple Pay's signature: the CMS `SignedData` Apple
//! sends uses indefinite lengths (BER), which DER-only parsers refuse, while the certificates
//! and signed attributes inside it are DER. Each element keeps its raw bytes, so what was
//! signed is verified exactly as it was sent, never a re-encoding.

/// Tags used here.
pub mod tag {
    pub const INTEGER: u8 = 0x02;
    pub const BIT_STRING: u8 = 0x03;
    pub const OCTET_STRING: u8 = 0x04;
    pub const OID: u8 = 0x06;
    pub const UTC_TIME: u8 = 0x17;
    pub const GENERALIZED_TIME: u8 = 0x18;
    pub const SEQUENCE: u8 = 0x30;
    pub const SET: u8 = 0x31;
    /// `[0]` constructed (context-specific).
    pub const CONTEXT_0: u8 = 0xA0;
    /// `[3]` constructed (context-specific).
    pub const CONTEXT_3: u8 = 0xA3;
}

/// How deep constructed elements may nest (a bound against hostile input).
const MAX_DEPTH: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Element<'a> {
    pub tag: u8,
    /// The contents (for an indefinite length: up to, not including, the end-of-contents).
    pub content: &'a [u8],
    /// The whole element as sent: tag, length and contents (and end-of-contents).
    pub raw: &'a [u8],
}

pub type Result<T> = std::result::Result<T, String>;

/// Reads one element at the start of `input`; the element and what follows it.
pub fn read(input: &[u8]) -> Result<(Element<'_>, &[u8])> {
    read_at_depth(input, 0)
}

fn read_at_depth(input: &[u8], depth: usize) -> Result<(Element<'_>, &[u8])> {
    if depth > MAX_DEPTH {
        return Err("ASN.1 nested too deep".into());
    }
    let (&tag, rest) = input.split_first().ok_or("ASN.1 element missing")?;
    if tag & 0x1F == 0x1F {
        return Err("ASN.1 multi-byte tags are not used here".into());
    }
    let (&first, mut rest) = rest.split_first().ok_or("ASN.1 length missing")?;
    let header = input.len() - rest.len();
    if first == 0x80 {
        // Indefinite length: constructed only, children until end-of-contents (00 00).
        if tag & 0x20 == 0 {
            return Err("ASN.1 indefinite length on a primitive element".into());
        }
        let start = rest;
        loop {
            if rest.starts_with(&[0, 0]) {
                let content = &start[..start.len() - rest.len()];
                let used = header + content.len() + 2;
                return Ok((
                    Element {
                        tag,
                        content,
                        raw: &input[..used],
                    },
                    &input[used..],
                ));
            }
            let (_, after) = read_at_depth(rest, depth + 1)?;
            rest = after;
        }
    }
    let length = if first & 0x80 == 0 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7F);
        if count == 0 || count > 4 || rest.len() < count {
            return Err("ASN.1 length malformed".into());
        }
        let (bytes, after) = rest.split_at(count);
        rest = after;
        bytes.iter().fold(0usize, |n, b| (n << 8) | usize::from(*b))
    };
    if rest.len() < length {
        return Err("ASN.1 element truncated".into());
    }
    let header = input.len() - rest.len();
    let used = header + length;
    Ok((
        Element {
            tag,
            content: &rest[..length],
            raw: &input[..used],
        },
        &input[used..],
    ))
}

impl<'a> Element<'a> {
    /// Checks the tag.
    pub fn expect(self, tag: u8, what: &str) -> Result<Element<'a>> {
        if self.tag == tag {
            Ok(self)
        } else {
            Err(format!(
                "{what}: expected tag {tag:#04x}, found {:#04x}",
                self.tag
            ))
        }
    }

    /// The children of a constructed element, in order.
    pub fn children(self) -> Result<Vec<Element<'a>>> {
        if self.tag & 0x20 == 0 {
            return Err(format!("tag {:#04x} is not constructed", self.tag));
        }
        let mut rest = self.content;
        let mut children = Vec::new();
        while !rest.is_empty() {
            let (child, after) = read(rest)?;
            children.push(child);
            rest = after;
        }
        Ok(children)
    }

    /// The bytes of a BIT STRING with no unused bits.
    pub fn bit_string(self) -> Result<&'a [u8]> {
        let content = self.expect(tag::BIT_STRING, "bit string")?.content;
        match content.split_first() {
            Some((0, bits)) => Ok(bits),
            _ => Err("BIT STRING with unused bits".into()),
        }
    }
}

/// Reads the whole of `input` as exactly one element.
pub fn read_all(input: &[u8]) -> Result<Element<'_>> {
    let (element, rest) = read(input)?;
    if rest.is_empty() {
        Ok(element)
    } else {
        Err("trailing bytes after the ASN.1 element".into())
    }
}

/// The DER encoding of an object identifier's dotted text (for comparisons).
pub fn oid(dotted: &str) -> Vec<u8> {
    let arcs: Vec<u64> = dotted.split('.').map(|a| a.parse().unwrap_or(0)).collect();
    let mut out = Vec::new();
    if arcs.len() < 2 {
        return out;
    }
    let mut push = |mut arc: u64| {
        let mut bytes = vec![(arc & 0x7F) as u8];
        arc >>= 7;
        while arc > 0 {
            bytes.push(((arc & 0x7F) as u8) | 0x80);
            arc >>= 7;
        }
        bytes.reverse();
        out.extend(bytes);
    };
    push(arcs[0] * 40 + arcs[1]);
    for arc in &arcs[2..] {
        push(*arc);
    }
    out
}

/// Seconds since the Unix epoch of a UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime
/// (`YYYYMMDDHHMMSSZ`).
pub fn time(element: Element<'_>) -> Result<i64> {
    let text = std::str::from_utf8(element.content).map_err(|_| "time is not text")?;
    let digits = text.strip_suffix('Z').ok_or("time must end with Z (UTC)")?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("malformed time {text:?}"));
    }
    let (year, rest) = match (element.tag, digits.len()) {
        (tag::UTC_TIME, 12) => {
            let yy: i64 = digits[..2].parse().map_err(|_| "bad year")?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &digits[2..])
        }
        (tag::GENERALIZED_TIME, 14) => (digits[..4].parse().map_err(|_| "bad year")?, &digits[4..]),
        _ => return Err(format!("malformed time {text:?}")),
    };
    let field = |i: usize| -> i64 { rest[i..i + 2].parse().unwrap_or(-1) };
    let (month, day, hour, minute, second) = (field(0), field(2), field(4), field(6), field(8));
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return Err(format!("malformed time {text:?}"));
    }
    Ok(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definite_and_indefinite_lengths_keep_their_raw_bytes() {
        // SEQUENCE (indefinite) { INTEGER 5, OCTET STRING "ab" } 00 00, then a trailer.
        let input = [
            0x30, 0x80, 0x02, 0x01, 0x05, 0x04, 0x02, b'a', b'b', 0, 0, 0xFF,
        ];
        let (element, rest) = read(&input).unwrap();
        assert_eq!(element.tag, tag::SEQUENCE);
        assert_eq!(element.raw, &input[..11]);
        assert_eq!(rest, &[0xFF]);
        let children = element.children().unwrap();
        assert_eq!(children.len(), 2);
        assert_eq!(children[1].content, b"ab");
        // Long-form length.
        let mut long = vec![0x04, 0x81, 200];
        long.extend([7u8; 200]);
        assert_eq!(read_all(&long).unwrap().content.len(), 200);
    }

    #[test]
    fn hostile_input_is_refused_not_trusted() {
        for bad in [
            &[][..],
            &[0x30],
            &[0x30, 0x05, 0x02],
            &[0x04, 0x80, 0x00, 0x00],
            &[0x30, 0x80, 0x02, 0x01],
            &[0x30, 0x85, 1, 2, 3, 4, 5],
            &[0x1F, 0x01, 0x00],
            &[0x04, 0x84, 0xFF, 0xFF, 0xFF, 0xFF],
        ] {
            assert!(read_all(bad).is_err(), "{bad:?}");
        }
        // Nesting past the bound.
        let mut deep = Vec::new();
        for _ in 0..40 {
            deep.extend([0x30, 0x80]);
        }
        for _ in 0..40 {
            deep.extend([0, 0]);
        }
        assert!(read_all(&deep).is_err());
    }

    #[test]
    fn oids_and_times() {
        assert_eq!(
            oid("1.2.840.113549.1.9.4"),
            [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 1, 9, 4]
        );
        let utc = Element {
            tag: tag::UTC_TIME,
            content: b"210901190306Z",
            raw: &[],
        };
        assert_eq!(time(utc).unwrap(), 1_630_522_986);
        let generalized = Element {
            tag: tag::GENERALIZED_TIME,
            content: b"20210901190306Z",
            raw: &[],
        };
        assert_eq!(time(generalized).unwrap(), time(utc).unwrap());
        for bad in [
            &b"2109011903Z"[..],
            b"210901190306",
            b"211301190306Z",
            b"21090119030aZ",
        ] {
            assert!(
                time(Element {
                    tag: tag::UTC_TIME,
                    content: bad,
                    raw: &[]
                })
                .is_err()
            );
        }
    }
}
