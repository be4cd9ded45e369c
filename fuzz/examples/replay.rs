//! Replays files through a target: `cargo run -p strata-fuzz --example replay -- <target> <file>...`
//! (with `STRATA_FUZZ_TRACE=1` the op-sequence targets print their ops).

fn main() {
    let mut args = std::env::args().skip(1);
    let name = args.next().expect("usage: replay <target> <file>...");
    let (_, target) = strata_fuzz::TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .expect("a known target");
    for path in args {
        let data = std::fs::read(&path).expect("readable input");
        eprintln!("replaying {path}");
        target(&data);
    }
}
