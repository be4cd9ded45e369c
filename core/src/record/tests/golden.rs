//! Golden vectors: to be filled.
