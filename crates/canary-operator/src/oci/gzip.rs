//! gzip (RFC 1952) with stored deflate blocks (RFC 1951, BTYPE 00): valid
//! for every gzip reader, byte for byte the same for the same input (no
//! time, no compressor version in it), and small to get right. A Wasm
//! module compresses little, so the size given up is small.

/// Largest stored block.
const MAX_STORED: usize = 65_535;

/// `data` as a gzip member.
pub fn stored(data: &[u8]) -> Vec<u8> {
    let blocks = data.len().div_ceil(MAX_STORED).max(1);
    let mut out = Vec::with_capacity(10 + data.len() + 5 * blocks + 8);
    // Magic, deflate, no flags, mtime 0, no extra flags, OS unknown.
    out.extend_from_slice(&[0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0xff]);
    let mut chunks = data.chunks(MAX_STORED).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[0x01, 0x00, 0x00, 0xff, 0xff]);
    }
    while let Some(chunk) = chunks.next() {
        let last = chunks.peek().is_none();
        let len = u16::try_from(chunk.len()).unwrap_or(u16::MAX);
        out.push(u8::from(last));
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

/// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320), as gzip uses.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Reads a gzip member of stored blocks back (for tests).
    pub(crate) fn unstore(member: &[u8]) -> Vec<u8> {
        assert_eq!(&member[..4], &[0x1f, 0x8b, 0x08, 0x00]);
        let mut at = 10;
        let mut out = Vec::new();
        loop {
            let last = member[at] & 1 == 1;
            assert_eq!(member[at] & 0b110, 0, "stored blocks only");
            let len = usize::from(u16::from_le_bytes([member[at + 1], member[at + 2]]));
            let nlen = u16::from_le_bytes([member[at + 3], member[at + 4]]);
            assert_eq!(nlen, !(len as u16));
            out.extend_from_slice(&member[at + 5..at + 5 + len]);
            at += 5 + len;
            if last {
                break;
            }
        }
        let crc = u32::from_le_bytes([member[at], member[at + 1], member[at + 2], member[at + 3]]);
        assert_eq!(crc, crc32(&out));
        assert_eq!(at + 8, member.len());
        out
    }

    #[test]
    fn crc32_is_the_standard_one() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn data_comes_back_across_block_boundaries() {
        for size in [0, 1, MAX_STORED, MAX_STORED + 1, 3 * MAX_STORED + 7] {
            let data: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
            assert_eq!(unstore(&stored(&data)), data, "{size} bytes");
        }
    }
}
