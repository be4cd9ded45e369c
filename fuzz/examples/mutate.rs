//! A fuzzer for stable toolchains, without coverage feedback: random mutations of a target's
//! corpus (bit flips, byte changes, insertions, deletions, splices of two inputs, fresh random
//! tails) run through the target for a while; a panicking input is written to `<out>/` and the
//! run goes on. `cargo run --release -p strata-fuzz --example mutate -- <target> <seconds>
//! <seed> <out dir>`.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut data = corpus[rng.below(corpus.len())].clone();
    for _ in 0..1 + rng.below(8) {
        let at = rng.below(data.len() + 1);
        match rng.below(6) {
            0 if at < data.len() => data[at] ^= 1 << rng.below(8),
            1 if at < data.len() => data[at] = rng.next() as u8,
            2 => data.insert(at, rng.next() as u8),
            3 if at < data.len() => {
                let n = rng.below(16).min(data.len() - at);
                data.drain(at..at + n);
            }
            4 => {
                let other = &corpus[rng.below(corpus.len())];
                let from = rng.below(other.len());
                data.truncate(at);
                data.extend_from_slice(&other[from..]);
            }
            _ => {
                data.truncate(at);
                let n = rng.below(64);
                data.extend((0..n).map(|_| rng.next() as u8));
            }
        }
    }
    data
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [name, seconds, seed, out] = &args[..] else {
        panic!("usage: mutate <target> <seconds> <seed> <out dir>");
    };
    let (_, target) = strata_fuzz::TARGETS
        .iter()
        .find(|(n, _)| n == name)
        .expect("a known target");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(name);
    let mut corpus: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .expect("the target's corpus")
        .map(|e| std::fs::read(e.expect("entry").path()).expect("readable"))
        .collect();
    assert!(!corpus.is_empty(), "no seeds in {}", dir.display());
    std::fs::create_dir_all(out).expect("output dir");
    std::panic::set_hook(Box::new(|_| {}));
    let mut rng = Rng(seed.parse::<u64>().expect("a numeric seed") | 1);
    let deadline = Instant::now() + Duration::from_secs(seconds.parse().expect("seconds"));
    let (start, mut runs, mut failures) = (Instant::now(), 0u64, 0u64);
    while Instant::now() < deadline {
        let data = mutate(&mut rng, &corpus);
        runs += 1;
        if catch_unwind(AssertUnwindSafe(|| target(&data))).is_err() {
            failures += 1;
            let path = format!("{out}/crash-{runs}");
            std::fs::write(&path, &data).expect("write the failing input");
            eprintln!("failure at run {runs}: {path}");
        } else if runs % 64 == 0 && corpus.len() < 4_096 {
            corpus.push(data);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "{runs} runs in {secs:.0} s ({:.0} exec/s), {failures} failures",
        runs as f64 / secs
    );
}
