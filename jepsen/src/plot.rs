//! (checks-and-output helper: to be written)
