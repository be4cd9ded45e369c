//! Hand-written `log_cleaner` inputs: an encoder of [`Input`] in the bytes `arbitrary` 1.x
//! decodes (integers little-endian, `bool` / `Option` tag as a byte's low bit, an enum's variant
//! `v` of `n` as a `u32` x with `x * n >> 32 == v`; the round trip is unit-tested), and three
//! scenarios: a full cleaning, cleanings cut short by crashes, tombstone expiry.

use crate::log_cleaner::{AppendIn, Between, ConfigIn, Input, Op};

#[derive(Default)]
struct Enc(Vec<u8>);

impl Enc {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn variant(&mut self, v: u64, n: u64) {
        let x = (v << 32).div_ceil(n);
        let x = u32::try_from(x).expect("a variant index below the count");
        self.0.extend_from_slice(&x.to_le_bytes());
    }
    fn config(&mut self, c: &ConfigIn) {
        self.u16(c.segment_bytes);
        self.u8(c.index_interval);
        self.u16(c.delete_retention_ms);
        self.u16(c.min_lag_ms);
        match c.max_lag_ms {
            Some(ms) => {
                self.u8(1);
                self.u16(ms);
            }
            None => self.u8(0),
        }
        self.u8(c.dirty_ratio);
    }
    fn append(&mut self, a: &AppendIn) {
        self.u8(a.records);
        self.u16(a.keys);
        self.u8(a.tombstones);
        self.u8(a.codec);
        self.u8(a.producer);
    }
    fn between(&mut self, b: &Between) {
        match b {
            Between::Append(a) => {
                self.variant(0, 4);
                self.append(a);
            }
            Between::Roll => self.variant(1, 4),
            Between::Settle => self.variant(2, 4),
            Between::TruncateTo { back } => {
                self.variant(3, 4);
                self.u8(*back);
            }
        }
    }
    fn op(&mut self, op: &Op) {
        const N: u64 = 12;
        match op {
            Op::Append(a) => {
                self.variant(0, N);
                self.append(a);
            }
            Op::Roll => self.variant(1, N),
            Op::Flush => self.variant(2, N),
            Op::Checkpoint => self.variant(3, N),
            Op::Settle => self.variant(4, N),
            Op::Tick { ms } => {
                self.variant(5, N);
                self.u16(*ms);
            }
            Op::Clean { hw, budget } => {
                self.variant(6, N);
                self.u8(*hw);
                self.u8(*budget);
            }
            Op::CleanCrash { hw, at, seed } => {
                self.variant(7, N);
                self.u8(*hw);
                self.u8(*at);
                self.u64(*seed);
            }
            Op::CleanBetween { hw, steps, between } => {
                self.variant(8, N);
                self.u8(*hw);
                self.u8(*steps);
                self.between(between);
            }
            Op::Crash { seed, recovery_at } => {
                self.variant(9, N);
                self.u64(*seed);
                match recovery_at {
                    Some(at) => {
                        self.u8(1);
                        self.u8(*at);
                    }
                    None => self.u8(0),
                }
            }
            Op::Reopen => self.variant(10, N),
            Op::TruncateTo { back } => {
                self.variant(11, N);
                self.u8(*back);
            }
        }
    }
}

/// The bytes [`Input::decode`] turns into `input`.
pub fn encode(input: &Input) -> Vec<u8> {
    let mut e = Enc::default();
    e.config(&input.config);
    for op in &input.ops {
        e.op(op);
    }
    e.0
}

/// Segments of 450 bytes (a few batches each), dirty ratio 0 (clean whenever anything is
/// dirty), `delete.retention.ms` 1,000, no compaction lag.
fn config() -> ConfigIn {
    ConfigIn {
        segment_bytes: 300,
        index_interval: 60,
        delete_retention_ms: 1_000,
        min_lag_ms: 0,
        max_lag_ms: None,
        dirty_ratio: 0,
    }
}

/// `n` appends cycling through keys, codecs and producers; `tombstones` on every fifth.
fn appends(n: u8, salt: u16, tombstones: bool) -> Vec<Op> {
    (0..n)
        .map(|i| {
            Op::Append(AppendIn {
                records: i,
                keys: (u16::from(i) * 0x2c9).wrapping_add(salt),
                tombstones: if tombstones && i % 5 == 4 { 0b0101 } else { 0 },
                codec: i,
                producer: i / 2,
            })
        })
        .collect()
}

fn sealed(mut ops: Vec<Op>) -> Vec<Op> {
    ops.extend([Op::Roll, Op::Settle]);
    ops
}

/// A full cleaning, a bounded one, a reopen and a cleaning overtaken by an append.
fn full_cleaning() -> Vec<Op> {
    let mut ops = sealed(appends(12, 0, true));
    ops.push(Op::Clean { hw: 255, budget: 0 });
    ops.extend(sealed(appends(8, 7, false)));
    ops.extend([
        Op::Tick { ms: 50 },
        Op::Clean { hw: 255, budget: 2 },
        Op::Reopen,
    ]);
    ops.extend(sealed(appends(6, 3, true)));
    ops.push(Op::CleanBetween {
        hw: 200,
        steps: 1,
        between: Between::Append(AppendIn {
            records: 2,
            keys: 0o123,
            tombstones: 1,
            codec: 3,
            producer: 1,
        }),
    });
    ops
}

/// Cleanings cut short at their 3rd, 12th, 25th and 60th operations, each then crashed, and
/// a crash whose recovery crashes too.
fn crashed_cleaning() -> Vec<Op> {
    let mut ops = Vec::new();
    for (i, at) in [2u8, 11, 24, 59].into_iter().enumerate() {
        ops.extend(sealed(appends(9, 5 * i as u16, true)));
        ops.push(Op::CleanCrash {
            hw: 255,
            at,
            seed: 2 + i as u64,
        });
    }
    ops.extend(sealed(appends(5, 1, false)));
    ops.push(Op::Clean { hw: 255, budget: 0 });
    ops.extend(appends(3, 9, true));
    ops.push(Op::Crash {
        seed: 6,
        recovery_at: Some(3),
    });
    ops
}

/// Tombstones of k1 and k2 (after values of every key) get a horizon at one cleaning and go
/// at a cleaning 1,500 ms later; then appends and a truncation.
fn tombstone_expiry() -> Vec<Op> {
    let put = |keys: u16, tombstones: u8| {
        Op::Append(AppendIn {
            records: 3,
            keys,
            tombstones,
            codec: 0,
            producer: 3,
        })
    };
    // Keys 0-3, then 4-7 (three bits each, first record lowest), then tombstones of 1 and 2.
    let mut ops = vec![put(0o3210, 0), put(0o7654, 0), put(0o0021, 0b0011)];
    ops = sealed(ops);
    ops.push(Op::Clean { hw: 255, budget: 0 });
    ops.push(Op::Tick { ms: 1_500 });
    ops.extend(sealed(vec![put(0o7654, 0)]));
    ops.push(Op::Clean { hw: 255, budget: 0 });
    ops.extend(appends(4, 6, true));
    ops.push(Op::TruncateTo { back: 5 });
    ops
}

/// `(file name, bytes)` of every seed.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    [
        ("seed-full-cleaning", full_cleaning()),
        ("seed-crashed-cleaning", crashed_cleaning()),
        ("seed-tombstone-expiry", tombstone_expiry()),
    ]
    .into_iter()
    .map(|(name, ops)| {
        let input = Input {
            config: config(),
            ops,
        };
        (name.to_string(), encode(&input))
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log_cleaner::run;

    fn decoded(name: &str) -> Input {
        let (_, bytes) = seeds()
            .into_iter()
            .find(|(n, _)| n == name)
            .expect("a seed of that name");
        Input::decode(&bytes).unwrap()
    }

    #[test]
    fn the_encoding_round_trips() {
        for (name, ops) in [
            ("seed-full-cleaning", full_cleaning()),
            ("seed-crashed-cleaning", crashed_cleaning()),
            ("seed-tombstone-expiry", tombstone_expiry()),
        ] {
            assert_eq!(format!("{:?}", decoded(name).ops), format!("{ops:?}"));
        }
    }

    #[test]
    fn the_seeds_reach_what_they_are_named_after() {
        let full = run(&decoded("seed-full-cleaning"));
        assert!(full.swapped >= 3 && full.abandoned == 0, "{full:?}");
        let crashed = run(&decoded("seed-crashed-cleaning"));
        assert!(crashed.crashed >= 3, "{crashed:?}");
        let expiry = run(&decoded("seed-tombstone-expiry"));
        assert!(expiry.expired > 0, "{expiry:?}");
    }
}
