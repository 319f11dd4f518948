//! A POSIX ustar archive holding one file, written byte for byte the same
//! for the same input: owner root, mode 0644, modification time 0.

/// Tar's block size.
const BLOCK: usize = 512;

/// Why a file cannot be archived.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TarError {
    /// ustar names are at most 100 bytes here (no prefix field used).
    #[error("file name {0:?} is longer than 100 bytes")]
    NameTooLong(String),
    /// ustar sizes are 11 octal digits.
    #[error("file of {0} bytes is too large for a ustar header")]
    TooLarge(usize),
}

/// An archive with the single regular file `name` holding `content`.
pub fn single_file(name: &str, content: &[u8]) -> Result<Vec<u8>, TarError> {
    if name.len() > 100 {
        return Err(TarError::NameTooLong(name.to_owned()));
    }
    if content.len() as u64 > 0o77_777_777_777 {
        return Err(TarError::TooLarge(content.len()));
    }
    let mut header = [0u8; BLOCK];
    header[..name.len()].copy_from_slice(name.as_bytes());
    put(&mut header, 100, b"0000644\0"); // mode
    put(&mut header, 108, b"0000000\0"); // uid
    put(&mut header, 116, b"0000000\0"); // gid
    put(
        &mut header,
        124,
        format!("{:011o}\0", content.len()).as_bytes(),
    ); // size
    put(&mut header, 136, b"00000000000\0"); // mtime
    put(&mut header, 148, b"        "); // checksum, as spaces while summing
    header[156] = b'0'; // regular file
    put(&mut header, 257, b"ustar\0"); // magic
    put(&mut header, 263, b"00"); // version
    put(&mut header, 329, b"0000000\0"); // devmajor
    put(&mut header, 337, b"0000000\0"); // devminor
    let checksum: u32 = header.iter().map(|&b| u32::from(b)).sum();
    put(&mut header, 148, format!("{checksum:06o}\0 ").as_bytes());

    let padded = content.len().div_ceil(BLOCK) * BLOCK;
    let mut archive = Vec::with_capacity(BLOCK + padded + 2 * BLOCK);
    archive.extend_from_slice(&header);
    archive.extend_from_slice(content);
    archive.resize(BLOCK + padded + 2 * BLOCK, 0);
    Ok(archive)
}

fn put(header: &mut [u8; BLOCK], at: usize, bytes: &[u8]) {
    header[at..at + bytes.len()].copy_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_archive_is_header_content_padding_and_two_zero_blocks() {
        let archive = single_file("plugin.wasm", b"\0asm\x01\0\0\0").unwrap();
        assert_eq!(archive.len(), 4 * BLOCK);
        assert_eq!(&archive[..11], b"plugin.wasm");
        assert_eq!(&archive[124..136], b"00000000010\0");
        assert_eq!(&archive[BLOCK..BLOCK + 8], b"\0asm\x01\0\0\0");
        assert!(archive[2 * BLOCK..].iter().all(|&b| b == 0));
        // The checksum counts its own field as spaces.
        let mut summed = archive[..BLOCK].to_vec();
        summed[148..156].copy_from_slice(b"        ");
        let sum: u32 = summed.iter().map(|&b| u32::from(b)).sum();
        assert_eq!(&archive[148..156], format!("{sum:06o}\0 ").as_bytes());
    }

    #[test]
    fn long_names_are_refused() {
        assert!(matches!(
            single_file(&"x".repeat(101), b""),
            Err(TarError::NameTooLong(_))
        ));
    }
}
