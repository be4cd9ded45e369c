//! Broker lifecycle (KIP-631): registration, unfencing, heartbeats, session expiry, controlled
//! shutdown, re-registration; and producer id blocks (KIP-730).

use super::*;

#[test]
fn kip631_register_starts_fenced_and_heartbeat_unfences_once_caught_up() {
    let mut h = Harness::new();
    let epoch = h.register(1);
    assert_eq!(
        epoch as u64,
        h.image().offset,
        "epoch = offset the registration was decided at + 1"
    );
    assert!(
        h.image().brokers[&NodeId(1)].fenced,
        "a registered broker starts fenced"
    );

    // Behind its registration: stays fenced.
    let behind = h.handle(Request::Heartbeat {
        broker_id: NodeId(1),
        broker_epoch: epoch,
        metadata_offset: epoch as u64 - 1,
        want_shutdown: false,
    });
    assert_eq!(
        behind,
        Response::Heartbeat {
            error_code: 0,
            fenced: true,
            shutdown_ready: false
        }
    );
    assert!(h.image().brokers[&NodeId(1)].fenced);

    // Caught up: unfenced.
    let caught_up = h.heartbeat(1, epoch);
    assert_eq!(
        caught_up,
        Response::Heartbeat {
            error_code: 0,
            fenced: false,
            shutdown_ready: false
        }
    );
    assert!(!h.image().brokers[&NodeId(1)].fenced);

    // Further heartbeats change nothing.
    let (response, records) = h.handle_records(Request::Heartbeat {
        broker_id: NodeId(1),
        broker_epoch: epoch,
        metadata_offset: h.image().offset,
        want_shutdown: false,
    });
    assert_eq!(
        response,
        Response::Heartbeat {
            error_code: 0,
            fenced: false,
            shutdown_ready: false
        }
    );
    assert!(records.is_empty());
}

#[test]
fn kip631_heartbeat_from_unknown_broker_or_old_epoch_is_stale() {
    let mut h = Harness::new();
    let epoch = h.register(1);
    let stale = Response::Heartbeat {
        error_code: ErrorCode::STALE_BROKER_EPOCH.0,
        fenced: true,
        shutdown_ready: false,
    };
    for (broker, broker_epoch) in [(1, epoch - 1), (1, epoch + 1), (2, epoch)] {
        let (response, records) = h.handle_records(Request::Heartbeat {
            broker_id: NodeId(broker),
            broker_epoch,
            metadata_offset: 100,
            want_shutdown: false,
        });
        assert_eq!(response, stale, "broker {broker} epoch {broker_epoch}");
        assert!(records.is_empty());
    }
}

#[test]
fn kip631_epochs_of_registrations_strictly_grow() {
    let mut h = Harness::new();
    let mut last = 0;
    for id in [1, 2, 1, 3, 1] {
        let epoch = h.register(id);
        assert!(epoch > last, "{epoch} > {last}");
        last = epoch;
    }
}

#[test]
fn session_expiry_fences_and_moves_leadership_to_an_isr_member() {
    let mut h = Harness::new();
    let epochs = h.start_brokers(&[1, 2, 3]);
    h.create_topic("t", 3, 3);
    let led_by_1: Vec<i32> = (0..3)
        .filter(|p| h.partition("t", *p).leader == Some(NodeId(1)))
        .collect();
    assert_eq!(led_by_1.len(), 1, "leaders are spread");
    let before = h.partition("t", led_by_1[0]);

    // Brokers 2 and 3 keep heartbeating; 1 goes silent. Exactly the timeout is not expiry.
    h.advance_ms(9_000);
    h.heartbeat(2, epochs[&2]);
    h.heartbeat(3, epochs[&3]);
    assert!(h.tick().is_empty(), "now - last == timeout is not expired");
    h.advance_ms(1);
    let records = h.tick();
    assert!(records.contains(&MetadataRecord::FenceBroker {
        broker_id: NodeId(1),
        broker_epoch: epochs[&1]
    }));
    assert!(h.image().brokers[&NodeId(1)].fenced);

    let after = h.partition("t", led_by_1[0]);
    let expected_leader = before.replicas.iter().copied().find(|r| *r != NodeId(1));
    assert_eq!(
        after.leader, expected_leader,
        "first replica in replica order in the new ISR"
    );
    assert_eq!(
        after.leader_epoch,
        before.leader_epoch + 1,
        "leader change bumps the leader epoch"
    );
    assert_eq!(after.partition_epoch, before.partition_epoch + 1);
    for p in 0..3 {
        let part = h.partition("t", p);
        assert!(
            !part.isr.contains(&NodeId(1)),
            "fenced broker left the ISR of t-{p}"
        );
        assert_ne!(part.leader, Some(NodeId(1)));
    }
    // A follower-only partition changed its ISR only: partition epoch, not leader epoch.
    let other = (0..3).find(|p| *p != led_by_1[0]).unwrap();
    let o = h.partition("t", other);
    assert_eq!((o.leader_epoch, o.partition_epoch), (0, 1));
}

#[test]
fn sole_isr_leader_fenced_goes_offline_and_comes_back_when_it_unfences() {
    let mut h = Harness::new();
    let epochs = h.start_brokers(&[1, 2]);
    assert_eq!(code(&h.create_topic("solo", 1, 1)), ErrorCode::NONE);
    let owner = h.partition("solo", 0).leader.unwrap();
    let other = if owner == NodeId(1) { 2 } else { 1 };

    h.advance_ms(10_000);
    h.heartbeat(other, epochs[&other]);
    h.tick();
    let offline = h.partition("solo", 0);
    assert_eq!(
        offline.leader, None,
        "no other ISR member: offline (unclean election off)"
    );
    assert_eq!(
        offline.isr,
        vec![owner],
        "the ISR is never empty: the last member stays"
    );
    assert_eq!(offline.leader_epoch, 1);
    assert!(
        h.controller.tick(h.now).is_empty(),
        "the other broker is not eligible"
    );

    // The owner comes back: its heartbeat unfences it and it leads again.
    let response = h.heartbeat(owner.0, epochs[&owner.0]);
    assert_eq!(
        response,
        Response::Heartbeat {
            error_code: 0,
            fenced: false,
            shutdown_ready: false
        }
    );
    let back = h.partition("solo", 0);
    assert_eq!(back.leader, Some(owner));
    assert_eq!((back.leader_epoch, back.partition_epoch), (2, 2));
}

#[test]
fn kip631_reregistration_fences_the_old_incarnation_in_the_same_batch() {
    let mut h = Harness::new();
    let epochs = h.start_brokers(&[1, 2, 3]);
    h.create_topic("t", 3, 3);
    let before = h.image().clone();

    let (response, records) = h.handle_records(Request::RegisterBroker {
        broker_id: NodeId(1),
        host: "localhost".into(),
        port: 9093,
        rack: None,
    });
    let Response::Registered { broker_epoch } = response else {
        panic!("{response:?}")
    };
    assert!(broker_epoch > epochs[&1]);
    assert!(
        matches!(records[0], MetadataRecord::RegisterBroker { .. }),
        "registration first"
    );
    assert!(records.len() > 1, "partition changes in the same batch");
    assert!(h.image().brokers[&NodeId(1)].fenced);
    for p in 0..3 {
        let part = h.partition("t", p);
        assert_eq!(part.isr.len(), 2, "t-{p}: the old incarnation left the ISR");
        assert_ne!(part.leader, Some(NodeId(1)));
        let old = before.partition("t", p).unwrap();
        if old.leader == Some(NodeId(1)) {
            assert_eq!(part.leader_epoch, old.leader_epoch + 1);
        }
    }
    // The old incarnation's heartbeats are refused; the new one unfences.
    let stale = h.heartbeat(1, epochs[&1]);
    assert!(matches!(stale, Response::Heartbeat { error_code: 77, .. }));
    h.heartbeat(1, broker_epoch);
    assert!(!h.image().brokers[&NodeId(1)].fenced);
}

#[test]
fn controlled_shutdown_fences_and_reports_ready() {
    let mut h = Harness::new();
    let epochs = h.start_brokers(&[1, 2]);
    h.create_topic("t", 2, 2);
    let shutdown = |h: &mut Harness| {
        let offset = h.image().offset;
        h.handle(Request::Heartbeat {
            broker_id: NodeId(1),
            broker_epoch: epochs[&1],
            metadata_offset: offset,
            want_shutdown: true,
        })
    };
    assert_eq!(
        shutdown(&mut h),
        Response::Heartbeat {
            error_code: 0,
            fenced: true,
            shutdown_ready: true
        }
    );
    assert!(h.image().brokers[&NodeId(1)].fenced);
    for p in 0..2 {
        assert_eq!(
            h.partition("t", p).leader,
            Some(NodeId(2)),
            "leadership moved before exit"
        );
    }
    // Asking again changes nothing and stays ready.
    let offset = h.image().offset;
    assert_eq!(
        shutdown(&mut h),
        Response::Heartbeat {
            error_code: 0,
            fenced: true,
            shutdown_ready: true
        }
    );
    assert_eq!(h.image().offset, offset);
}

#[test]
fn kip631_activation_grants_every_broker_a_fresh_session() {
    let mut h = Harness::new();
    h.start_brokers(&[1, 2]);
    h.advance_ms(60_000); // long silence under the previous controller
    h.controller.on_activated(h.now);
    assert!(h.tick().is_empty(), "no fencing right after activation");
    assert_eq!(
        h.controller.next_deadline(),
        Some(h.now.saturating_add_millis(9_000)).map(|i| Instant(i.0 + 1))
    );
    h.advance_ms(9_001);
    let records = h.tick();
    assert_eq!(
        records
            .iter()
            .filter(|r| matches!(r, MetadataRecord::FenceBroker { .. }))
            .count(),
        2
    );
}

#[test]
fn tick_writes_the_cluster_id_once() {
    let mut c = Controller::new(config());
    assert_eq!(
        c.next_deadline(),
        Some(Instant::default()),
        "cluster id missing: due now"
    );
    let records = c.tick(Instant::from_millis(5));
    assert_eq!(
        records,
        vec![MetadataRecord::ClusterId {
            cluster_id: "test-cluster".into()
        }]
    );
    c.replay(1, &records);
    assert!(c.tick(Instant::from_millis(6)).is_empty());
}

#[test]
fn fetch_metadata_is_not_the_controllers_to_answer() {
    let mut h = Harness::new();
    let (response, records) = h.handle_records(Request::FetchMetadata {
        from_offset: 0,
        max_wait_ms: 0,
    });
    assert!(matches!(response, Response::Error { .. }));
    assert!(records.is_empty());
}

#[test]
fn kip730_producer_id_blocks_are_unique_and_increasing() {
    let mut h = Harness::new();
    let epochs = h.start_brokers(&[1, 2]);
    let mut next = 0;
    for id in [1, 2, 1, 1, 2] {
        match h.handle(Request::AllocateProducerIds {
            broker_id: NodeId(id),
            broker_epoch: epochs[&id],
        }) {
            Response::ProducerIds {
                error_code: 0,
                first_producer_id,
                count,
            } => {
                assert_eq!(
                    first_producer_id, next,
                    "blocks are contiguous and never reused"
                );
                assert_eq!(count, 1000);
                next = first_producer_id + i64::from(count);
                assert_eq!(h.image().next_producer_id, next);
            }
            other => panic!("{other:?}"),
        }
    }
    let (stale, records) = h.handle_records(Request::AllocateProducerIds {
        broker_id: NodeId(1),
        broker_epoch: epochs[&1] - 1,
    });
    assert!(matches!(
        stale,
        Response::ProducerIds { error_code: 77, .. }
    ));
    assert!(records.is_empty());
}
