//! Tidy: `strata-core` stays sans-IO. Fails the build if any source file under `core/src` names
//! an async runtime, the file system, sockets, threads, the OS clock or OS randomness. Time,
//! randomness and storage come in from the driver (see `core/src/lib.rs`).

use std::fs;
use std::path::{Path, PathBuf};

const BANNED: &[&str] = &[
    "tokio",
    "madsim",
    "std::fs",
    "std::net",
    "std::thread",
    "Instant::now",
    "SystemTime::now",
    "thread_rng",
    "rand::random",
    "OsRng",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("core/src is readable") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn core_names_no_io_clock_or_randomness() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 3, "found the core sources");
    let mut hits = Vec::new();
    for file in files {
        let text = fs::read_to_string(&file).expect("source is UTF-8");
        for (n, line) in text.lines().enumerate() {
            for banned in BANNED {
                if line.contains(banned) {
                    hits.push(format!(
                        "{}:{}: `{banned}`: {}",
                        file.display(),
                        n + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(
        hits.is_empty(),
        "core/ must stay sans-IO:\n{}",
        hits.join("\n")
    );
}
