//! Finding (or building) the `strata` binary a run starts.
//!
//! `STRATA_BIN` if set; otherwise `cargo build --release -p strata-node --bin strata` in the
//! workspace (a no-op when it is up to date, as `tests/src/binary.rs` does: a stale broker would
//! otherwise be tested without a word) and `target/release/strata` (under `CARGO_TARGET_DIR` if
//! set).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The workspace root (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().unwrap_or(here).to_path_buf()
}

/// The `strata` binary to run (see the module docs); `cargo` is the cargo to build it with.
pub fn strata_bin(cargo: &str) -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("STRATA_BIN") {
        let p = PathBuf::from(p);
        if !p.is_file() {
            bail!("STRATA_BIN={} is not a file", p.display());
        }
        return Ok(p);
    }
    let root = workspace_root();
    let status = Command::new(cargo)
        .args(["build", "--release", "-p", "strata-node", "--bin", "strata"])
        .current_dir(&root)
        .status()
        .context("running cargo build for strata")?;
    if !status.success() {
        bail!("cargo build --release -p strata-node --bin strata failed");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let target = if target.is_absolute() {
        target
    } else {
        root.join(target)
    };
    Ok(target.join("release/strata"))
}
