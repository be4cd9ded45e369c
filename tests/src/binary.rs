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

/// `STRATA_BIN` if set; otherwise `cargo build --release -p strata-node --bin strata` once per
/// test process (a no-op when the binary is up to date) and `target/release/strata`. Always
/// building matters: `cargo test -p strata-tests` does not rebuild the broker, and a stale binary
/// would be tested without a word.
pub fn strata_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("STRATA_BIN") {
            let p = PathBuf::from(p);
            assert!(p.is_file(), "STRATA_BIN={} is not a file", p.display());
            return p;
        }
        let root = workspace_root();
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
