//! Checkers over recorded histories.
