//! Random request and timer sequences, with failed appends and snapshots small enough to run
//! all the time: the coordinator's own asserts check its invariants on every call; at the end
//! every request has exactly one reply (after unload), replaying the log on a fresh coordinator
//! rebuilds the same committed offsets and group metadata, and so does replaying it from any
//! batch at or below the start of the last snapshot reported superseding what is below it.

use proptest::prelude::*;

use super::*;

#[derive(Debug, Clone)]
enum Op {
    /// Client `c` joins group `g` (with its known id, or fresh), at version `v`.
    Join {
        c: usize,
        g: usize,
        fresh: bool,
        v: i16,
        static_: bool,
    },
    /// Client `c` syncs (as leader it assigns to everyone it knows).
    Sync {
        c: usize,
    },
    Heartbeat {
        c: usize,
    },
    Leave {
        c: usize,
    },
    Commit {
        c: usize,
        standalone: bool,
        offset: i64,
    },
    Fetch {
        g: usize,
        stable: bool,
    },
    Delete {
        g: usize,
    },
    OffsetDelete {
        g: usize,
    },
    Advance {
        ms: u64,
    },
    /// Toggle whether the high watermark follows the log end; catch up now.
    HighWatermark {
        auto: bool,
    },
    /// The next append fails (NOT_ENOUGH_REPLICAS).
    FailNextAppend,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..4usize, 0..2usize, any::<bool>(), 3..6i16, any::<bool>()).prop_map(|(c, g, fresh, v, static_)| Op::Join { c, g, fresh, v, static_ }),
        3 => (0..4usize).prop_map(|c| Op::Sync { c }),
        2 => (0..4usize).prop_map(|c| Op::Heartbeat { c }),
        1 => (0..4usize).prop_map(|c| Op::Leave { c }),
        2 => (0..4usize, any::<bool>(), 0..100i64).prop_map(|(c, standalone, offset)| Op::Commit { c, standalone, offset }),
        1 => (0..3usize, any::<bool>()).prop_map(|(g, stable)| Op::Fetch { g, stable }),
        1 => (0..3usize).prop_map(|g| Op::Delete { g }),
        1 => (0..3usize).prop_map(|g| Op::OffsetDelete { g }),
        3 => prop_oneof![Just(500u64), Just(3_000), Just(11_000), Just(25_000), Just(8 * 24 * 3_600_000)].prop_map(|ms| Op::Advance { ms }),
        1 => any::<bool>().prop_map(|auto| Op::HighWatermark { auto }),
        1 => Just(Op::FailNextAppend),
    ]
}

#[derive(Debug, Clone, Default)]
struct Client {
    group: usize,
    member_id: String,
    generation: i32,
    leader: bool,
    members: Vec<String>,
}

const GROUPS: [&str; 3] = ["g0", "g1", "g2"];

fn run(ops: Vec<Op>) {
    let mut config = config();
    config.max_size = 3;
    config.snapshot_min_records = 4;
    config.snapshot_chunk_records = 2;
    config.snapshot_retry_backoff_ms = 1_000;
    let mut h = Harness::with_config(config);
    let mut clients = vec![Client::default(); 4];
    let mut sent = Vec::new();
    let mut joins: BTreeMap<RequestId, usize> = BTreeMap::new();
    for op in ops {
        let id = match op {
            Op::Join {
                c,
                g,
                fresh,
                v,
                static_,
            } => {
                let cl = &mut clients[c];
                if fresh || cl.group != g {
                    *cl = Client {
                        group: g,
                        ..Client::default()
                    };
                }
                let instance = format!("i{c}");
                let req = join_request(
                    GROUPS[g],
                    &cl.member_id,
                    static_.then_some(instance.as_str()),
                    v,
                    &["range", "roundrobin"],
                );
                let id = h.send(req);
                joins.insert(id, c);
                id
            }
            Op::Sync { c } => {
                let cl = &clients[c];
                let assignments = if cl.leader {
                    cl.members
                        .iter()
                        .map(|m| (m.clone(), Bytes::from(m.clone())))
                        .collect()
                } else {
                    Vec::new()
                };
                h.sync(
                    GROUPS[cl.group],
                    &cl.member_id.clone(),
                    cl.generation,
                    assignments,
                )
            }
            Op::Heartbeat { c } => {
                let cl = clients[c].clone();
                let _ = h.heartbeat(GROUPS[cl.group], &cl.member_id, cl.generation);
                continue;
            }
            Op::Leave { c } => {
                let cl = &clients[c];
                h.send(Request::LeaveGroup(LeaveGroup {
                    group_id: GROUPS[cl.group].into(),
                    members: vec![LeavingMember {
                        member_id: cl.member_id.clone(),
                        group_instance_id: None,
                    }],
                }))
            }
            Op::Commit {
                c,
                standalone,
                offset,
            } => {
                let cl = clients[c].clone();
                if standalone {
                    h.commit(GROUPS[2], -1, "", "t", c as i32, offset)
                } else {
                    h.commit(
                        GROUPS[cl.group],
                        cl.generation,
                        &cl.member_id,
                        "t",
                        c as i32,
                        offset,
                    )
                }
            }
            Op::Fetch { g, stable } => {
                let _ = h.fetch(GROUPS[g], "t", 0, stable);
                continue;
            }
            Op::Delete { g } => h.send(Request::DeleteGroups(DeleteGroups {
                groups: vec![GROUPS[g].into()],
            })),
            Op::OffsetDelete { g } => h.send(Request::OffsetDelete(OffsetDelete {
                group_id: GROUPS[g].into(),
                topics: vec![("t".into(), vec![0, 1])],
            })),
            Op::Advance { ms } => {
                h.advance(ms);
                continue;
            }
            Op::HighWatermark { auto } => {
                h.auto_commit = auto;
                h.commit_all();
                continue;
            }
            Op::FailNextAppend => {
                h.fail_next_append = true;
                continue;
            }
        };
        sent.push(id);
        // Learn from join replies as a client would.
        let learned: Vec<(RequestId, usize)> = joins
            .iter()
            .filter(|(id, _)| h.replies.contains_key(id))
            .map(|(id, c)| (*id, *c))
            .collect();
        for (id, c) in learned {
            joins.remove(&id);
            if let Some(Response::JoinGroup(r)) = h.replies.get(&id) {
                let cl = &mut clients[c];
                if !r.member_id.is_empty() {
                    cl.member_id = r.member_id.clone();
                }
                if r.error_code.is_ok() {
                    cl.generation = r.generation_id;
                    cl.leader = r.leader == r.member_id;
                    cl.members = r.members.iter().map(|m| m.member_id.clone()).collect();
                }
            }
        }
    }
    // Everything appended gets committed; a fresh coordinator replaying the log agrees.
    h.auto_commit = true;
    h.commit_all();
    let loaded = h.reload();
    assert_eq!(
        loaded.latest_image(),
        h.c.latest_image(),
        "load = replay (latest)"
    );
    assert_eq!(
        loaded.committed_image(),
        h.c.committed_image(),
        "load = replay (committed)"
    );
    assert_eq!(h.c.committed_image(), h.c.latest_image(), "all committed");
    // Snapshots: a load from any batch at or below the last superseded offset is a full load.
    if let Some(&below) = h.superseded.last() {
        assert!(
            h.superseded.windows(2).all(|w| w[0] < w[1]),
            "snapshot starts increase: {:?}",
            h.superseded
        );
        for start in h.batch_starts().into_iter().filter(|o| *o <= below) {
            let loaded = h.reload_from(start);
            assert_eq!(
                loaded.latest_image(),
                h.c.latest_image(),
                "a load from {start} (snapshot start {below})"
            );
            assert_eq!(loaded.committed_image(), h.c.committed_image());
        }
    }
    // Every request is answered exactly once, at the latest when the coordinator unloads.
    for (id, response) in h.c.unload() {
        assert!(
            h.replies.insert(id, response).is_none(),
            "one reply per request"
        );
    }
    for id in sent {
        assert!(h.replies.contains_key(&id), "request {id:?} was answered");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_sequences_keep_invariants_and_load_is_replay(ops in proptest::collection::vec(op(), 1..80)) {
        run(ops);
    }
}
