//! raft-rs logs through `slog`; Strata logs through `tracing`. This drain forwards every slog
//! record (message plus key-values, flattened into one string) to `tracing` at the matching
//! level, under the `raft` target. It spawns nothing and buffers nothing (slog-async, raft's
//! default, spawns a thread, which the simulator forbids).

use std::fmt::{self, Write as _};

use slog::{Drain, KV, Level, OwnedKVList, Record};

/// The slog drain that forwards to `tracing`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingDrain;

/// A root slog logger whose records go to `tracing`.
pub fn logger() -> slog::Logger {
    slog::Logger::root(TracingDrain, slog::o!())
}

impl Drain for TracingDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record<'_>, values: &OwnedKVList) -> Result<(), slog::Never> {
        // Formatting costs: skip records tracing would drop anyway.
        let enabled = match record.level() {
            Level::Critical | Level::Error => {
                tracing::enabled!(target: "raft", tracing::Level::ERROR)
            }
            Level::Warning => tracing::enabled!(target: "raft", tracing::Level::WARN),
            Level::Info => tracing::enabled!(target: "raft", tracing::Level::INFO),
            Level::Debug => tracing::enabled!(target: "raft", tracing::Level::DEBUG),
            Level::Trace => tracing::enabled!(target: "raft", tracing::Level::TRACE),
        };
        if !enabled {
            return Ok(());
        }
        let mut line = KvLine(record.msg().to_string());
        // A failing serializer only loses key-values; the message itself is already there.
        let _ = record.kv().serialize(record, &mut line);
        let _ = values.serialize(record, &mut line);
        let line = line.0;
        match record.level() {
            Level::Critical | Level::Error => tracing::error!(target: "raft", "{line}"),
            Level::Warning => tracing::warn!(target: "raft", "{line}"),
            Level::Info => tracing::info!(target: "raft", "{line}"),
            Level::Debug => tracing::debug!(target: "raft", "{line}"),
            Level::Trace => tracing::trace!(target: "raft", "{line}"),
        }
        Ok(())
    }
}

/// Appends ` key=value` pairs to the message.
struct KvLine(String);

impl slog::Serializer for KvLine {
    fn emit_arguments(&mut self, key: slog::Key, val: &fmt::Arguments<'_>) -> slog::Result {
        let _ = write!(self.0, " {key}={val}");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_pass_through_without_panicking() {
        let log = logger().new(slog::o!("raft_id" => 7));
        slog::info!(log, "became leader"; "term" => 3);
        slog::debug!(log, "quiet");
    }
}
