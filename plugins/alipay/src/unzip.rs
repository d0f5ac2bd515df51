//! Reading a zip (Alipay's bill file) through its central directory: stored and deflated
//! entries, each checked against its CRC-32. Written here rather than taken from the `zip`
//! crate, whose archive reader keeps a hash map of the names seeded from the OS random
//! source, which the sandbox refuses (a trap), and whose front-to-back reader cannot read
//! entries whose sizes follow their data (what Java's `ZipOutputStream`, Alipay's, writes).
//! Pure; every offset is checked before it is used.

use std::io::Read;

const EOCD: u32 = 0x0605_4b50;
const CENTRAL: u32 = 0x0201_4b50;
const LOCAL: u32 = 0x0403_4b50;
/// The end record is 22 bytes and may be followed by a comment of up to 65535.
const EOCD_SEARCH: usize = 22 + 65_535;

/// One file of the zip: its name (as stored, bytes) and its content.
#[derive(Debug)]
pub struct Entry {
    pub name: Vec<u8>,
    pub content: Vec<u8>,
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    bytes
        .get(at..at.checked_add(2)?)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    bytes
        .get(at..at.checked_add(4)?)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Every file of `zip`, in the central directory's order; at most `entries_max` files of at
/// most `entry_bytes_max` bytes together (what they unpack to, as the directory states and
/// as they do).
pub fn entries(zip: &[u8], entries_max: usize, entry_bytes_max: u64) -> Result<Vec<Entry>, String> {
    let from = zip.len().saturating_sub(EOCD_SEARCH);
    let end = (from..zip.len().saturating_sub(21))
        .rev()
        .find(|&at| u32_at(zip, at) == Some(EOCD))
        .ok_or("no end of central directory (cut short?)")?;
    let count = usize::from(u16_at(zip, end + 10).ok_or("a short end record")?);
    let size = u32_at(zip, end + 12).ok_or("a short end record")? as usize;
    let offset = u32_at(zip, end + 16).ok_or("a short end record")? as usize;
    if count == 0xffff || offset == 0xffff_ffff {
        return Err("a ZIP64 archive (not a bill's)".into());
    }
    if count > entries_max {
        return Err(format!("{count} files, more than a bill's {entries_max}"));
    }
    if offset.checked_add(size).is_none_or(|e| e > end) {
        return Err("the central directory lies outside the file".into());
    }
    let mut files = Vec::with_capacity(count);
    let mut at = offset;
    let mut unpacked: u64 = 0;
    for n in 1..=count {
        let bad = |what: &str| format!("file {n}: {what}");
        if u32_at(zip, at) != Some(CENTRAL) {
            return Err(bad("no central directory header"));
        }
        let field =
            |o: usize| u16_at(zip, at.saturating_add(o)).ok_or_else(|| bad("a short header"));
        let flags = field(8)?;
        let method = field(10)?;
        let crc = u32_at(zip, at.saturating_add(16)).ok_or_else(|| bad("a short header"))?;
        let compressed =
            u32_at(zip, at.saturating_add(20)).ok_or_else(|| bad("a short header"))? as usize;
        let size =
            u64::from(u32_at(zip, at.saturating_add(24)).ok_or_else(|| bad("a short header"))?);
        let (name_len, extra_len, comment_len) = (
            usize::from(field(28)?),
            usize::from(field(30)?),
            usize::from(field(32)?),
        );
        let local =
            u32_at(zip, at.saturating_add(42)).ok_or_else(|| bad("a short header"))? as usize;
        let name = zip
            .get(at.saturating_add(46)..at.saturating_add(46 + name_len))
            .ok_or_else(|| bad("a name past the end"))?
            .to_vec();
        at = at.saturating_add(46 + name_len + extra_len + comment_len);
        if flags & 1 != 0 {
            return Err(bad("encrypted"));
        }
        unpacked = unpacked.saturating_add(size);
        if unpacked > entry_bytes_max {
            return Err(bad("too large (the files unpack to more than a bill)"));
        }
        if u32_at(zip, local) != Some(LOCAL) {
            return Err(bad("no local header where the directory says"));
        }
        let skip = usize::from(
            u16_at(zip, local.saturating_add(26)).ok_or_else(|| bad("a short local header"))?,
        ) + usize::from(
            u16_at(zip, local.saturating_add(28)).ok_or_else(|| bad("a short local header"))?,
        );
        let start = local.saturating_add(30 + skip);
        let data = zip
            .get(start..start.saturating_add(compressed))
            .ok_or_else(|| bad("data past the end (cut short?)"))?;
        let mut content = Vec::new();
        match method {
            0 => content.extend_from_slice(data),
            8 => {
                flate2::read::DeflateDecoder::new(data)
                    .take(size + 1)
                    .read_to_end(&mut content)
                    .map_err(|e| bad(&format!("does not inflate: {e}")))?;
            }
            other => {
                return Err(bad(&format!(
                    "compression method {other}, not stored or deflate"
                )));
            }
        }
        if content.len() as u64 != size {
            return Err(bad("unpacks to another size than the directory says"));
        }
        let mut check = flate2::Crc::new();
        check.update(&content);
        if check.sum() != crc {
            return Err(bad("its CRC-32 does not match (damaged or altered)"));
        }
        files.push(Entry { name, content });
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn stored(content: &[u8]) -> Vec<u8> {
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        zip.start_file("a.csv", options).unwrap();
        zip.write_all(content).unwrap();
        zip.finish().unwrap().into_inner()
    }

    #[test]
    fn stored_files_read_and_altered_ones_are_refused() {
        let zip = stored(b"hello bill");
        let files = entries(&zip, 8, 1 << 20).unwrap();
        assert_eq!(
            (files[0].name.as_slice(), files[0].content.as_slice()),
            (&b"a.csv"[..], &b"hello bill"[..])
        );
        let mut altered = zip.clone();
        let at = altered
            .windows(10)
            .position(|w| w == b"hello bill")
            .unwrap();
        altered[at] = b'j';
        assert!(
            entries(&altered, 8, 1 << 20)
                .unwrap_err()
                .contains("CRC-32")
        );
        assert!(entries(&zip, 8, 4).unwrap_err().contains("too large"));
        assert!(entries(&zip, 0, 1 << 20).unwrap_err().contains("more than"));
        assert!(entries(&zip[..zip.len() - 1], 8, 1 << 20).is_err());
        assert!(entries(b"", 8, 1 << 20).unwrap_err().contains("cut short"));
        // Offsets that point anywhere are refused, never followed out of the file.
        for i in 0..zip.len() {
            let mut garbled = zip.clone();
            garbled[i] ^= 0xff;
            let _ = entries(&garbled, 8, 1 << 20);
        }
    }
}
