//! Tests of the group coordinator: a small driver that appends every output's records and
//! commits them when told, then flows (`flows.rs`), offsets (`offsets.rs`) and a proptest over
//! random request and timer sequences (`prop.rs`).
