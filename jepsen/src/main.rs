//! `strata-jepsen`: one Jepsen-style run of five real `strata` processes (as root).
//!
//! ```sh
//! strata-jepsen --seed 7 --nemesis combined --time-limit 60 --out target/jepsen/7
//! ```
//!
//! Exit code: 0 when the run is valid, 1 when an anomaly was found or the cluster was not live
//! after the heal, 2 when the run itself could not be carried out.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use strata_jepsen::nemesis::NemesisKind;
use strata_jepsen::run::{Mode, RunOptions};

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Jepsen-style tests of Strata on five real processes (run as root)"
)]
struct Args {
    /// The seed of the nemesis plan.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Which nemesis.
    #[arg(long, value_enum, default_value = "combined")]
    nemesis: NemesisKind,
    /// Seconds of the fault phase.
    #[arg(long, default_value_t = 60)]
    time_limit: u64,
    /// Producer acks: -1 (idempotent) or 1.
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    acks: i16,
    /// Consumers assign partitions, or subscribe in a group and commit.
    #[arg(long, value_enum, default_value = "assign")]
    mode: Mode,
    /// Also run confluent-kafka clients.
    #[arg(long)]
    confluent: bool,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
    /// The strata binary (default: $STRATA_BIN, else target/release/strata).
    #[arg(long)]
    strata_bin: Option<PathBuf>,
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    if args.acks != -1 && args.acks != 1 {
        eprintln!("--acks must be -1 or 1");
        std::process::exit(2);
    }
    let strata_bin = args
        .strata_bin
        .or_else(|| std::env::var_os("STRATA_BIN").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("target/release/strata"));
    let strata_bin = std::fs::canonicalize(&strata_bin).unwrap_or(strata_bin);
    let options = RunOptions {
        seed: args.seed,
        nemesis: args.nemesis,
        time_limit: Duration::from_secs(args.time_limit),
        acks: args.acks,
        mode: args.mode,
        confluent: args.confluent,
        out: args.out,
        strata_bin,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            std::process::exit(2);
        }
    };
    let code = runtime.block_on(async {
        strata_jepsen::net::install_cleanup_on_signals();
        match strata_jepsen::run::run(options.clone()).await {
            Ok(report) => {
                print!("{}", report.summary);
                if report.valid() { 0 } else { 1 }
            }
            Err(e) => {
                eprintln!("run failed: {e:#}\nrerun: {}", options.command());
                2
            }
        }
    });
    drop(runtime);
    strata_jepsen::net::sweep();
    std::process::exit(code);
}
