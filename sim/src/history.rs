//! Recorded histories of client operations.
