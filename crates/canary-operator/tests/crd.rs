//! The committed CRD (`manifests/kubernetes/crd/crd.yaml`) must be exactly
//! what the Rust types generate. Regenerate with `make crd`
//! (`UPDATE_CRD=1`).

use std::path::PathBuf;

fn crd_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../manifests/kubernetes/crd/crd.yaml")
}

#[test]
fn committed_crd_matches_the_types() {
    let generated = canary_operator::resource::crd_yaml().unwrap();
    let path = crd_path();
    if std::env::var_os("UPDATE_CRD").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}; run `make crd`", path.display()));
    assert!(
        committed == generated,
        "{} is out of date with the Rust types; run `make crd`",
        path.display()
    );
}
