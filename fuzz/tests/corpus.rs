//! Replays every file of every `corpus/<target>/` directory through its target, so the seeds and
//! everything the fuzzers found worth keeping run in a plain `cargo test` on stable.
//!
//! `regressions/<target>/` holds inputs that make a target fail because of an open bug in
//! `strata-core`; `known_bugs` replays them and is ignored until the bug is fixed (then move the
//! file into `corpus/`).

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

fn replay(kind: &str) -> usize {
    let mut count = 0;
    for (name, target) in strata_fuzz::TARGETS {
        // Regressions run the strict checks, including those a known bug makes the fuzz target
        // skip.
        let target: &fn(&[u8]) = match (kind, *name) {
            ("regressions", "index_files") => {
                &(strata_fuzz::index_files::index_files_strict as fn(&[u8]))
            }
            _ => target,
        };
        for path in files(&root().join(kind).join(name)) {
            let data = fs::read(&path).expect("corpus file is readable");
            eprintln!("replaying {}", path.display());
            target(&data);
            count += 1;
        }
    }
    count
}

#[test]
fn corpus_replays() {
    let n = replay("corpus");
    for (name, _) in strata_fuzz::TARGETS {
        assert!(
            !files(&root().join("corpus").join(name)).is_empty(),
            "corpus/{name} has no seeds"
        );
    }
    eprintln!("replayed {n} corpus files");
}

#[test]
#[ignore = "inputs of open strata-core bugs; see fuzz/README.md"]
fn known_bugs() {
    let n = replay("regressions");
    eprintln!("replayed {n} regression files");
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
