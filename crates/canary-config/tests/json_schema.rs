//! The shipped JSON Schema (`manifests/schema/filter-config.schema.json`)
//! must be exactly what the Rust types generate. Regenerate with
//! `make schema`.

use std::path::PathBuf;

fn schema_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../manifests/schema/filter-config.schema.json")
}

#[test]
fn committed_schema_matches_the_types() {
    let generated = serde_json::to_string_pretty(&canary_config::json_schema()).unwrap() + "\n";
    let path = schema_path();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}; run `make schema`", path.display()));
    assert!(
        committed == generated,
        "{} is out of date with the Rust types; run `make schema`",
        path.display()
    );
}

#[test]
fn schema_describes_every_field() {
    let schema = canary_config::json_schema();
    let text = schema.to_string();
    for field in [
        "routing_header",
        "response_header",
        "routes",
        "canary_weight",
        "path_prefix",
        "secret_header",
        "cookie",
        "salt",
    ] {
        assert!(
            text.contains(&format!("\"{field}\"")),
            "schema lacks {field}"
        );
    }
    // Unknown fields are refused by the filter; the schema says so too.
    assert!(text.contains("\"additionalProperties\":false"));
}
