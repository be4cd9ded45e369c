//! kcat (librdkafka's command-line client) against a real broker.

use strata_tests::StrataNode;
use strata_tests::tools::run_kcat;

/// 10,000 keyed messages produced with `kcat -P -K:` come back from `kcat -C` in the same order
/// with the same keys and values.
#[test]
fn kcat_keyed_round_trip() {
    let node = StrataNode::start();
    let b = node.bootstrap();
    let topic = "kcat-round-trip";
    let expected: Vec<String> = (0..10_000)
        .map(|i| format!("key-{}:value-{i}-{}", i % 97, "x".repeat(i % 50)))
        .collect();
    let input = expected.join("\n") + "\n";
    run_kcat(
        &["-b", &b, "-P", "-K:", "-t", topic, "-X", "acks=all"],
        input.as_bytes(),
    );
    let out = run_kcat(
        &[
            "-b",
            &b,
            "-C",
            "-t",
            topic,
            "-e",
            "-o",
            "beginning",
            "-f",
            "%k:%s\n",
            "-q",
        ],
        b"",
    );
    let got: Vec<&str> = out.lines().collect();
    assert_eq!(
        got.len(),
        expected.len(),
        "kcat consumed {} of {} messages",
        got.len(),
        expected.len()
    );
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(g, e, "message {i} differs");
    }
}

/// `kcat -L` lists the topic the broker just auto-created on produce.
#[test]
fn kcat_metadata_lists_topic() {
    let node = StrataNode::start();
    let b = node.bootstrap();
    run_kcat(&["-b", &b, "-P", "-t", "kcat-meta"], b"one\n");
    let out = run_kcat(&["-b", &b, "-L", "-t", "kcat-meta"], b"");
    assert!(
        out.contains("topic \"kcat-meta\""),
        "kcat -L output:\n{out}"
    );
    assert!(out.contains("1 brokers"), "kcat -L output:\n{out}");
}
