//! Replays every file of every `corpus/<target>/` directory through its target, so the seeds and
//! everything the fuzzers found worth keeping run in a plain `cargo test` on stable. Every target
//! is strict: an input that fails is a bug in `strata-core` (or an open finding, kept in
//! `findings/`, which is not replayed).

use std::fs;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.expect("directory entry").path())
            .filter(|p| p.is_file())
            .collect(),
        Err(_) => Vec::new(),
    };
    out.sort();
    out
}

/// Replays every file of `corpus/<target>/`; returns the files whose replay panicked.
fn replay(targets: &[strata_fuzz::Target]) -> (usize, Vec<String>) {
    let mut count = 0;
    let mut failed = Vec::new();
    for (name, target) in targets {
        for path in files(&root().join("corpus").join(name)) {
            let data = fs::read(&path).expect("corpus file is readable");
            eprintln!("replaying {}", path.display());
            if std::panic::catch_unwind(|| target(&data)).is_err() {
                failed.push(path.display().to_string());
            }
            count += 1;
        }
    }
    (count, failed)
}

#[test]
fn corpus_replays() {
    let (n, failed) = replay(strata_fuzz::TARGETS);
    assert!(failed.is_empty(), "corpus files fail: {failed:#?}");
    for (name, _) in strata_fuzz::TARGETS {
        assert!(
            !files(&root().join("corpus").join(name)).is_empty(),
            "corpus/{name} has no seeds"
        );
    }
    eprintln!("replayed {n} corpus files");
}

/// Regenerates the seed files: `cargo test -p strata-fuzz --test corpus -- --ignored write_seeds`.
#[test]
#[ignore = "writes files; run by hand to regenerate seeds"]
fn write_seeds() {
    for (target, name, bytes) in strata_fuzz::seeds::all() {
        let dir = root().join("corpus").join(target);
        fs::create_dir_all(&dir).expect("create corpus dir");
        fs::write(dir.join(name), &bytes).expect("write seed");
    }
}

/// Every seed passes its target (also checked by `corpus_replays` once written).
#[test]
fn generated_seeds_pass() {
    for (target, name, bytes) in strata_fuzz::seeds::all() {
        let (_, f) = strata_fuzz::TARGETS
            .iter()
            .find(|(n, _)| *n == target)
            .expect("known target");
        eprintln!("seed {target}/{name}");
        f(&bytes);
    }
}
