//! (harness helper: to be written)
