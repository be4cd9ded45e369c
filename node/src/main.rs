//! The `strata` binary: parse configuration, start the broker, stop on SIGINT/SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser};
use strata_node::config::{Config, Sources, settings_help};
use strata_node::fs_storage;

/// Strata: a Kafka-compatible distributed log.
#[derive(Debug, Parser)]
#[command(name = "strata", version)]
struct Cli {
    /// TOML file of settings (keys are the setting names below).
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Set any setting (repeatable), e.g. --set log.retention.ms=60000.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    set: Vec<String>,
    /// Data directory (= log.dirs).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<String>,
    /// Listener address host:port (= listeners).
    #[arg(long, value_name = "HOST:PORT")]
    listen: Option<String>,
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        biased;
        _ = ctrl_c => tracing::info!("SIGINT received"),
        _ = term => tracing::info!("SIGTERM received"),
    }
}

/// Keeps large buffers (fetched record sets, produce requests, up to 64 MiB) in glibc's heap
/// instead of a fresh `mmap` per allocation. Without it every 16 MiB fetch buffer is new memory
/// the kernel must fault in and zero, which cost about a fifth of the broker's CPU when
/// consuming. Freed memory is kept up to 128 MiB before being returned to the OS.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_allocator() {
    // SAFETY: `mallopt` only changes glibc allocator parameters. It is called once, first thing
    // in `main`, before any thread exists, with options and values glibc documents.
    #[allow(unsafe_code)]
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}

fn main() -> ExitCode {
    tune_allocator();
    let help = settings_help();
    let matches = Cli::command()
        .after_help(help.clone())
        .after_long_help(help)
        .get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let file = match &cli.config {
        Some(p) => match fs_storage::read_to_string(p) {
            Ok(text) => Some((p.display().to_string(), text)),
            Err(e) => {
                eprintln!("strata: cannot read config file {}: {e}", p.display());
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    let sources = Sources {
        file,
        env: std::env::vars().collect(),
        sets: cli.set,
        data_dir: cli.data_dir,
        listen: cli.listen,
    };
    let config = match Config::resolve(&sources) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("strata: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("strata: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(strata_node::run(config, shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("strata failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}
