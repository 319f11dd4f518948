//! The filter module as an OCI image layout, the Wasm image format Istio
//! pulls for a `WasmPlugin` or `TrafficExtension` with an `oci://` URL.
//!
//! Format: the *compat* variant of the Wasm image specification
//! (solo-io/wasm `spec/spec-compat.md`), which Istio's image fetcher
//! (`pkg/wasm/imagefetcher.go`) tries first for OCI manifests: exactly one
//! layer of media type `application/vnd.oci.image.layer.v1.tar+gzip`
//! holding the file `plugin.wasm`, and the manifest annotation
//! `module.wasm.image/variant: compat`. Standard registry tools (`oras`,
//! `skopeo`, `crane`) copy such a layout to a registry unchanged.
//!
//! Everything is reproducible: the same module gives the same bytes and
//! therefore the same manifest digest, which is what a `WasmPlugin` pins
//! with `sha256` (Istio compares it with the manifest digest of the image
//! it pulls).
//!
//! The same layout writer packs the controller itself ([`container`]): one
//! static executable, no base image.

pub mod container;

use std::io::Write;
use std::path::Path;

use serde::Serialize;
use sha2::{Digest, Sha256};

/// The hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// A tar archive holding the single file `name`, the same bytes for the
/// same input: owner root, mode 0644, modification time 0.
fn single_file_tar(name: &str, content: &[u8]) -> std::io::Result<Vec<u8>> {
    single_file_tar_with_mode(name, content, 0o644)
}

/// [`single_file_tar`] with the file's mode.
pub(crate) fn single_file_tar_with_mode(
    name: &str,
    content: &[u8],
    mode: u32,
) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_path(name)?;
    header.set_size(content.len() as u64);
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    builder.append(&header, content)?;
    builder.into_inner()
}

/// `bytes` gzip-compressed, with no name or time in the header so the
/// output depends on the input only.
fn gzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = flate2::GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes)?;
    encoder.finish()
}

/// The file name Istio looks for in the layer.
pub const MODULE_FILE: &str = "plugin.wasm";
/// Media type of the manifest.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// Media type of the index.
pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
/// Media type of the image configuration.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// Media type of the one layer.
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// Manifest annotation marking the compat variant.
pub const VARIANT_ANNOTATION: &str = "module.wasm.image/variant";
/// The index annotation naming a manifest's tag.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

/// Why no image was written.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// The input is not a WebAssembly binary.
    #[error("{0} is not a WebAssembly module (it does not start with \\0asm)")]
    NotWasm(String),
    /// The module cannot be archived.
    #[error("cannot archive the module: {0}")]
    Archive(std::io::Error),
    /// A JSON document could not be written.
    #[error("cannot write JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// Reading the module or writing the layout failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
}

/// A content-addressed blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// `sha256:<hex>`.
    pub digest: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

impl Blob {
    fn new(bytes: Vec<u8>) -> Blob {
        Blob {
            digest: format!("sha256:{}", sha256_hex(&bytes)),
            bytes,
        }
    }

    /// The hex part of the digest, as a `WasmPlugin`'s `sha256` takes it.
    pub fn hex(&self) -> &str {
        self.digest.trim_start_matches("sha256:")
    }

    fn descriptor(&self, media_type: &'static str) -> Descriptor {
        Descriptor {
            media_type,
            digest: self.digest.clone(),
            size: self.bytes.len() as u64,
            annotations: None,
        }
    }
}

/// The image: its blobs, its manifest and the layout's index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciImage {
    /// The image configuration.
    pub config: Blob,
    /// The one layer (`plugin.wasm` in a tar.gz).
    pub layer: Blob,
    /// The manifest; its digest is the image's.
    pub manifest: Blob,
    /// `index.json`.
    pub index: Vec<u8>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: &'static str,
    digest: String,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<std::collections::BTreeMap<&'static str, String>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    schema_version: u32,
    media_type: &'static str,
    config: Descriptor,
    layers: Vec<Descriptor>,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    annotations: std::collections::BTreeMap<&'static str, String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Index {
    schema_version: u32,
    media_type: &'static str,
    manifests: Vec<Descriptor>,
}

#[derive(Serialize)]
struct ImageConfig {
    architecture: &'static str,
    os: &'static str,
    rootfs: RootFs,
}

#[derive(Serialize)]
pub(crate) struct RootFs {
    #[serde(rename = "type")]
    pub(crate) type_: &'static str,
    pub(crate) diff_ids: Vec<String>,
}

/// The image of `module`, tagged `tag` in the layout's index.
pub fn image(module: &[u8], tag: &str) -> Result<OciImage, OciError> {
    if !module.starts_with(b"\0asm") {
        return Err(OciError::NotWasm("the module".to_owned()));
    }
    let archive = single_file_tar(MODULE_FILE, module).map_err(OciError::Archive)?;
    assemble(
        &archive,
        |diff_id| {
            serde_json::to_vec(&ImageConfig {
                architecture: "wasm",
                os: "wasip1",
                rootfs: RootFs {
                    type_: "layers",
                    diff_ids: vec![diff_id],
                },
            })
        },
        [(VARIANT_ANNOTATION, "compat".to_owned())].into(),
        tag,
    )
}

/// An image of one layer (`archive`, gzip-compressed), its configuration
/// made from the layer's diff id, tagged `tag` in the layout's index.
pub(crate) fn assemble(
    archive: &[u8],
    config: impl FnOnce(String) -> Result<Vec<u8>, serde_json::Error>,
    annotations: std::collections::BTreeMap<&'static str, String>,
    tag: &str,
) -> Result<OciImage, OciError> {
    let diff_id = format!("sha256:{}", sha256_hex(archive));
    let layer = Blob::new(gzip(archive).map_err(OciError::Archive)?);
    let config = Blob::new(config(diff_id)?);
    let manifest = Blob::new(serde_json::to_vec(&Manifest {
        schema_version: 2,
        media_type: MANIFEST_MEDIA_TYPE,
        config: config.descriptor(CONFIG_MEDIA_TYPE),
        layers: vec![layer.descriptor(LAYER_MEDIA_TYPE)],
        annotations,
    })?);
    let mut entry = manifest.descriptor(MANIFEST_MEDIA_TYPE);
    entry.annotations = Some([(REF_NAME_ANNOTATION, tag.to_owned())].into());
    let index = serde_json::to_vec(&Index {
        schema_version: 2,
        media_type: INDEX_MEDIA_TYPE,
        manifests: vec![entry],
    })?;
    Ok(OciImage {
        config,
        layer,
        manifest,
        index,
    })
}

/// Writes `image` as an OCI image layout in `dir`: `oci-layout`,
/// `index.json`, `blobs/sha256/<hex>`. Blobs already there are rewritten
/// with the same bytes; blobs of other images are left alone.
pub fn write_layout(image: &OciImage, dir: &Path) -> Result<(), OciError> {
    let blobs = dir.join("blobs").join("sha256");
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| OciError::Io { path, source }
    };
    std::fs::create_dir_all(&blobs).map_err(io(&blobs))?;
    for blob in [&image.config, &image.layer, &image.manifest] {
        let path = blobs.join(blob.hex());
        std::fs::write(&path, &blob.bytes).map_err(io(&path))?;
    }
    let layout = dir.join("oci-layout");
    std::fs::write(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#).map_err(io(&layout))?;
    let index = dir.join("index.json");
    std::fs::write(&index, &image.index).map_err(io(&index))?;
    Ok(())
}

/// Reads the module at `module`, writes its image to `dir` tagged `tag`,
/// and returns the image.
pub fn build(module: &Path, dir: &Path, tag: &str) -> Result<OciImage, OciError> {
    let bytes = std::fs::read(module).map_err(|source| OciError::Io {
        path: module.display().to_string(),
        source,
    })?;
    let image = image(&bytes, tag).map_err(|error| match error {
        OciError::NotWasm(_) => OciError::NotWasm(module.display().to_string()),
        other => other,
    })?;
    write_layout(&image, dir)?;
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const MODULE: &[u8] = b"\0asm\x01\0\0\0 a tiny stand-in module";

    #[test]
    fn the_same_module_gives_the_same_digest() {
        let a = image(MODULE, "0.1.0").unwrap();
        let b = image(MODULE, "0.1.0").unwrap();
        assert_eq!(a, b);
        let other = image(b"\0asm\x01\0\0\0 another", "0.1.0").unwrap();
        assert_ne!(a.manifest.digest, other.manifest.digest);
        assert_eq!(a.manifest.hex().len(), 64);
    }

    #[test]
    fn the_manifest_is_the_compat_variant_istio_reads() {
        let image = image(MODULE, "0.1.0").unwrap();
        let manifest: Value = serde_json::from_slice(&image.manifest.bytes).unwrap();
        assert_eq!(manifest["schemaVersion"], 2);
        assert_eq!(manifest["mediaType"], MANIFEST_MEDIA_TYPE);
        assert_eq!(manifest["annotations"][VARIANT_ANNOTATION], "compat");
        let layers = manifest["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 1, "the compat variant has exactly one layer");
        assert_eq!(layers[0]["mediaType"], LAYER_MEDIA_TYPE);
        assert_eq!(layers[0]["digest"], image.layer.digest.as_str());
        assert_eq!(layers[0]["size"], image.layer.bytes.len());
        assert_eq!(manifest["config"]["digest"], image.config.digest.as_str());

        let mut archive = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(&image.layer.bytes[..]),
            &mut archive,
        )
        .unwrap();
        assert_eq!(&archive[..MODULE_FILE.len()], MODULE_FILE.as_bytes());
        assert_eq!(&archive[512..512 + MODULE.len()], MODULE);
        let config: Value = serde_json::from_slice(&image.config.bytes).unwrap();
        assert_eq!(
            config["rootfs"]["diff_ids"][0],
            format!("sha256:{}", sha256_hex(&archive))
        );
    }

    #[test]
    fn the_index_names_the_manifest_and_its_tag() {
        let image = image(MODULE, "1.2.3").unwrap();
        let index: Value = serde_json::from_slice(&image.index).unwrap();
        let entry = &index["manifests"][0];
        assert_eq!(entry["digest"], image.manifest.digest.as_str());
        assert_eq!(entry["size"], image.manifest.bytes.len());
        assert_eq!(entry["annotations"][REF_NAME_ANNOTATION], "1.2.3");
    }

    #[test]
    fn only_wasm_is_packaged() {
        assert!(matches!(image(b"MZ\x90\0", "x"), Err(OciError::NotWasm(_))));
    }

    #[test]
    fn the_layout_is_content_addressed_and_the_system_tar_reads_the_layer() {
        let dir = tempfile::tempdir().unwrap();
        let module_path = dir.path().join("filter.wasm");
        std::fs::write(&module_path, MODULE).unwrap();
        let out = dir.path().join("layout");
        let image = build(&module_path, &out, "0.1.0").unwrap();
        for blob in [&image.config, &image.layer, &image.manifest] {
            let stored = std::fs::read(out.join("blobs/sha256").join(blob.hex())).unwrap();
            assert_eq!(format!("sha256:{}", sha256_hex(&stored)), blob.digest);
        }
        let layout: Value =
            serde_json::from_slice(&std::fs::read(out.join("oci-layout")).unwrap()).unwrap();
        assert_eq!(layout["imageLayoutVersion"], "1.0.0");

        let extract = dir.path().join("extract");
        std::fs::create_dir(&extract).unwrap();
        let layer = out.join("blobs/sha256").join(image.layer.hex());
        let status = std::process::Command::new("tar")
            .arg("-xzf")
            .arg(&layer)
            .arg("-C")
            .arg(&extract)
            .status()
            .expect("the system's tar (used to check the layer independently)");
        assert!(status.success());
        assert_eq!(std::fs::read(extract.join(MODULE_FILE)).unwrap(), MODULE);
    }
}
