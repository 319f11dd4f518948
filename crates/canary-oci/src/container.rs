//! The controller's own container image: one static executable at
//! `/canary`, no base image (no shell, no libc, no certificates), run as
//! user 65532. An executable that needs a dynamic loader would not start in
//! such an image, so a dynamically linked one is refused.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::{assemble, single_file_tar_with_mode, write_layout, OciError, OciImage, RootFs};

/// Where the executable is in the image.
pub const EXECUTABLE: &str = "canary";

/// The user the image runs as (the "nonroot" user of distroless images).
pub const USER: &str = "65532:65532";

/// The port of `/metrics`, `/healthz` and `/readyz`.
pub const METRICS_PORT: &str = "8080/tcp";

/// Why an executable cannot be packed.
#[derive(Debug, thiserror::Error)]
pub enum ExecutableError {
    /// Not a 64-bit little-endian ELF file.
    #[error("{0} is not a 64-bit little-endian ELF executable")]
    NotElf(String),
    /// It names a dynamic loader (`PT_INTERP`), which an image without a
    /// base does not have.
    #[error(
        "{path} is dynamically linked (it asks for the loader {interpreter}); an image without a \
         base image needs a static executable: build with the musl target, or with \
         RUSTFLAGS=\"-C target-feature=+crt-static\""
    )]
    Dynamic { path: String, interpreter: String },
}

/// The loader a 64-bit little-endian ELF executable asks for, if any;
/// `None` for a static one (static-pie included).
pub fn interpreter(elf: &[u8]) -> Option<Result<String, ()>> {
    fn u16_at(b: &[u8], at: usize) -> Option<u16> {
        Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
    }
    fn u32_at(b: &[u8], at: usize) -> Option<u32> {
        Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
    }
    fn u64_at(b: &[u8], at: usize) -> Option<usize> {
        usize::try_from(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?)).ok()
    }
    let header = || -> Option<(usize, usize, usize)> {
        // Magic, ELFCLASS64, little-endian.
        if elf.get(..6)? != b"\x7fELF\x02\x01" {
            return None;
        }
        Some((
            u64_at(elf, 0x20)?,
            usize::from(u16_at(elf, 0x36)?),
            usize::from(u16_at(elf, 0x38)?),
        ))
    };
    let Some((offset, size, count)) = header() else {
        return Some(Err(()));
    };
    for index in 0..count {
        let at = offset + index * size;
        let Some(kind) = u32_at(elf, at) else {
            return Some(Err(()));
        };
        // PT_INTERP: the path of the loader, NUL-terminated.
        if kind == 3 {
            let (Some(start), Some(length)) = (u64_at(elf, at + 8), u64_at(elf, at + 32)) else {
                return Some(Err(()));
            };
            let bytes = elf.get(start..start + length).unwrap_or_default();
            let path = String::from_utf8_lossy(bytes)
                .trim_end_matches('\0')
                .to_owned();
            return Some(Ok(path));
        }
    }
    None
}

/// Checks that `elf` (read from `path`) is a static executable.
pub fn check_static(elf: &[u8], path: &str) -> Result<(), ExecutableError> {
    match interpreter(elf) {
        None => Ok(()),
        Some(Ok(interpreter)) => Err(ExecutableError::Dynamic {
            path: path.to_owned(),
            interpreter,
        }),
        Some(Err(())) => Err(ExecutableError::NotElf(path.to_owned())),
    }
}

#[derive(Serialize)]
struct ContainerConfig {
    architecture: &'static str,
    os: &'static str,
    config: Runtime,
    rootfs: RootFs,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Runtime {
    entrypoint: Vec<String>,
    user: &'static str,
    exposed_ports: BTreeMap<&'static str, BTreeMap<(), ()>>,
    labels: BTreeMap<&'static str, String>,
}

/// The image of the static executable `binary` (amd64), tagged `tag`.
/// The caller checks it is static ([`check_static`]).
pub fn image(binary: &[u8], tag: &str) -> Result<OciImage, OciError> {
    let archive =
        single_file_tar_with_mode(EXECUTABLE, binary, 0o755).map_err(OciError::Archive)?;
    assemble(
        &archive,
        |diff_id| {
            serde_json::to_vec(&ContainerConfig {
                architecture: "amd64",
                os: "linux",
                config: Runtime {
                    entrypoint: vec![format!("/{EXECUTABLE}")],
                    user: USER,
                    exposed_ports: [(METRICS_PORT, BTreeMap::new())].into(),
                    labels: [
                        ("org.opencontainers.image.title", "canary".to_owned()),
                        ("org.opencontainers.image.version", tag.to_owned()),
                    ]
                    .into(),
                },
                rootfs: RootFs {
                    type_: "layers",
                    diff_ids: vec![diff_id],
                },
            })
        },
        BTreeMap::new(),
        tag,
    )
}

/// Why no controller image was written.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error(transparent)]
    Executable(#[from] ExecutableError),
    #[error(transparent)]
    Oci(#[from] OciError),
}

/// Reads the executable at `binary`, checks it is static, writes its image
/// to `dir` tagged `tag`, and returns the image.
pub fn build(binary: &Path, dir: &Path, tag: &str) -> Result<OciImage, ContainerError> {
    let bytes = std::fs::read(binary).map_err(|source| OciError::Io {
        path: binary.display().to_string(),
        source,
    })?;
    check_static(&bytes, &binary.display().to_string())?;
    let image = image(&bytes, tag)?;
    write_layout(&image, dir)?;
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// A minimal ELF64 header with one program header of type `kind`.
    fn elf(kind: u32, interpreter: &[u8]) -> Vec<u8> {
        let mut bytes = vec![0u8; 0x40 + 56];
        bytes[..6].copy_from_slice(b"\x7fELF\x02\x01");
        bytes[0x20..0x28].copy_from_slice(&0x40u64.to_le_bytes());
        bytes[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        bytes[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        bytes[0x40..0x44].copy_from_slice(&kind.to_le_bytes());
        let start = bytes.len() as u64;
        bytes[0x40 + 8..0x40 + 16].copy_from_slice(&start.to_le_bytes());
        bytes[0x40 + 32..0x40 + 40].copy_from_slice(&(interpreter.len() as u64).to_le_bytes());
        bytes.extend_from_slice(interpreter);
        bytes
    }

    #[test]
    fn dynamic_executables_are_refused_with_the_loader_named() {
        let dynamic = elf(3, b"/lib64/ld-linux-x86-64.so.2\0");
        let error = check_static(&dynamic, "canary").unwrap_err().to_string();
        assert!(
            error.contains("/lib64/ld-linux-x86-64.so.2)") && error.contains("crt-static"),
            "{error}"
        );
        // PT_LOAD only: static.
        assert!(check_static(&elf(1, b""), "canary").is_ok());
        assert!(matches!(
            check_static(b"#!/bin/sh\n", "script"),
            Err(ExecutableError::NotElf(_))
        ));
    }

    #[test]
    fn the_test_binary_itself_is_read() {
        // This test's own executable: a real ELF file, static or not.
        let path = std::env::current_exe().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert!(!matches!(interpreter(&bytes), Some(Err(()))));
    }

    #[test]
    fn the_image_runs_the_executable_as_nonroot_with_no_base() {
        let binary = elf(1, b"");
        let image = image(&binary, "0.1.0").unwrap();
        assert_eq!(
            image,
            super::image(&binary, "0.1.0").unwrap(),
            "reproducible"
        );
        let config: Value = serde_json::from_slice(&image.config.bytes).unwrap();
        assert_eq!(config["os"], "linux");
        assert_eq!(config["architecture"], "amd64");
        assert_eq!(
            config["config"]["Entrypoint"],
            serde_json::json!(["/canary"])
        );
        assert_eq!(config["config"]["User"], "65532:65532");
        assert_eq!(
            config["config"]["ExposedPorts"]["8080/tcp"],
            serde_json::json!({})
        );
        let manifest: Value = serde_json::from_slice(&image.manifest.bytes).unwrap();
        assert_eq!(manifest["layers"].as_array().unwrap().len(), 1);
        assert!(manifest.get("annotations").is_none());

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("canary-bin");
        std::fs::write(&path, &binary).unwrap();
        let out = dir.path().join("layout");
        let written = build(&path, &out, "0.1.0").unwrap();
        let extract = dir.path().join("extract");
        std::fs::create_dir(&extract).unwrap();
        let status = std::process::Command::new("tar")
            .arg("-xzf")
            .arg(out.join("blobs/sha256").join(written.layer.hex()))
            .arg("-C")
            .arg(&extract)
            .status()
            .expect("the system's tar");
        assert!(status.success());
        let unpacked = extract.join(EXECUTABLE);
        assert_eq!(std::fs::read(&unpacked).unwrap(), binary);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&unpacked).unwrap().permissions().mode() & 0o777,
            0o755
        );
    }
}
