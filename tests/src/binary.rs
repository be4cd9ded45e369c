//! Finding (or building) the `strata` binary under test.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The workspace root (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent: the workspace")
        .to_path_buf()
}

/// `STRATA_BIN` if set, else `target/release/strata`, else `target/debug/strata`; if none
/// exists, builds the release binary once per test process.
pub fn strata_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("STRATA_BIN") {
            let p = PathBuf::from(p);
            assert!(p.is_file(), "STRATA_BIN={} is not a file", p.display());
            return p;
        }
        let root = workspace_root();
        for profile in ["release", "debug"] {
            let p = root.join("target").join(profile).join("strata");
            if p.is_file() {
                return p;
            }
        }
        let status = Command::new(env!("CARGO"))
            .args(["build", "--release", "-p", "strata-node", "--bin", "strata"])
            .current_dir(&root)
            .status()
            .expect("run cargo build for strata");
        assert!(
            status.success(),
            "cargo build --release -p strata-node --bin strata failed"
        );
        root.join("target/release/strata")
    })
    .clone()
}
