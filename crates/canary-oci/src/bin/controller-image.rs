//! `controller-image --binary <static executable> --out <folder> --tag <tag>`:
//! writes the controller's container image as an OCI image layout and
//! prints its manifest digest (what `make controller-image` runs).

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut binary = None;
    let mut out = PathBuf::from("target/oci/canary");
    let mut tag = env!("CARGO_PKG_VERSION").to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let Some(value) = args.next() else {
            eprintln!("controller-image: {flag} needs a value");
            return ExitCode::from(2);
        };
        match flag.as_str() {
            "--binary" => binary = Some(PathBuf::from(value)),
            "--out" => out = PathBuf::from(value),
            "--tag" => tag = value,
            other => {
                eprintln!("controller-image: unknown flag {other}; use --binary, --out, --tag");
                return ExitCode::from(2);
            }
        }
    }
    let Some(binary) = binary else {
        eprintln!("controller-image: --binary <static executable> is required");
        return ExitCode::from(2);
    };
    match canary_oci::container::build(&binary, &out, &tag) {
        Ok(image) => {
            println!("{}", image.manifest.digest);
            eprintln!(
                "controller-image: wrote {} (tag {tag}, {} bytes compressed)",
                out.display(),
                image.layer.bytes.len()
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("controller-image: {error}");
            ExitCode::FAILURE
        }
    }
}
