#!/usr/bin/env bash
# The one place Strata's performance numbers come from (issue #14, "The benchmark").
#
#   bash tests/bench.sh quick [--tansu]   # every figure once, small totals: about a minute
#   bash tests/bench.sh full  [--tansu]   # every figure 3 times, full totals; medians
#   bash tests/bench.sh --quick | --full  # the same
#   bash tests/bench.sh [own] [strata-bench args...]      # strata-bench against one node
#   bash tests/bench.sh cluster [strata-bench args...]    # strata-bench against three nodes
#   bash tests/bench.sh --help                            # this text
#
# quick and full (tests/bench/suite.sh) build release, then run each workload against fresh
# nodes on temporary data dirs with both Strata's strata-bench and librdkafka's C client
# rdkafka_performance (built once into target/bench-tools/ by tests/bench/rdkafka.sh): produce
# 1 KiB with fsync before ack on and off, consume from offset 0, produce 100 B, end-to-end
# latency at 1,000 msg/s, three local nodes at RF 3 and RF 1, 16 concurrent producers, and the
# disk's own fsync'd write rate (dd). They print progress lines, then one markdown table of
# every figure (median and runs, broker CPU seconds and peak RSS) with the goal ratios, also
# written to target/bench/last.md. --tansu also installs Tansu (cargo install, slow the first
# time) and runs the produce, consume and latency workloads against its memory engine.
# tests/bench/README.md says what each workload runs exactly. BENCH_RUNS, BENCH_PARTITIONS,
# BENCH_TMPDIR (where data dirs go), BENCH_TIMEOUT (seconds per client run) and STRATA_BIN
# change the defaults.
#
# own (also with no subcommand, or with only strata-bench arguments) builds release, starts a
# fresh strata on a temporary data dir, runs strata-bench against it, and stops the node. Extra
# arguments go to strata-bench, e.g.:
#   bash tests/bench.sh --total-bytes 2147483648 --in-flight 8
#
# `bash tests/bench.sh cluster [bench args...]` instead starts three nodes (a combined-mode
# cluster as in README "A local cluster") on 19092/19093, 29092/29093 and 39092/39093, waits
# until Metadata lists all three brokers, and produces with acks=all to an 8-partition topic of
# replication factor 3 in 1 KiB messages, 1 GiB in total (BENCH_TOTAL_BYTES to change; later
# arguments override the defaults). BENCH_LOG_DIR=dir keeps the node logs there; otherwise
# their WARN/ERROR lines are summarised before the temp dir is removed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

cluster() {
    cargo build --release -p strata-node --bins
    local strata="${STRATA_BIN:-target/release/strata}"
    local voters="1@127.0.0.1:19093,2@127.0.0.1:29093,3@127.0.0.1:39093"
    local n port
    for n in 1 2 3; do
        for port in "${n}9092" "${n}9093"; do
            if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
                echo "port $port is in use; stop whatever listens there first" >&2
                exit 1
            fi
        done
    done
    DIR="$(mktemp -d -t strata-bench-cluster-XXXXXX)"
    PIDS=()
    # shellcheck disable=SC2317 # run by the EXIT trap
    cluster_cleanup() {
        local pid
        for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
        for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
        for n in 1 2 3; do
            [[ -f "$DIR/node$n.log" ]] || continue
            echo "node $n log: $(grep -c 'WARN' "$DIR/node$n.log" || true) WARN," \
                "$(grep -c 'ERROR' "$DIR/node$n.log" || true) ERROR lines"
            grep -E 'WARN|ERROR' "$DIR/node$n.log" | sed 's/\x1b\[[0-9;]*m//g' | head -n 10 || true
        done
        if [[ -n "${BENCH_LOG_DIR:-}" ]]; then
            mkdir -p "$BENCH_LOG_DIR"
            cp "$DIR"/node*.log "$BENCH_LOG_DIR"/ 2>/dev/null || true
            echo "node logs kept in $BENCH_LOG_DIR"
        fi
        rm -rf "$DIR"
    }
    trap cluster_cleanup EXIT
    for n in 1 2 3; do
        "$strata" --data-dir "$DIR/data$n" --set "node.id=$n" \
            --set "controller.quorum.voters=$voters" \
            --set "listeners=PLAINTEXT://127.0.0.1:${n}9092,CONTROLLER://127.0.0.1:${n}9093" \
            >"$DIR/node$n.log" 2>&1 &
        PIDS+=("$!")
    done
    for n in 1 2 3; do
        for _ in $(seq 1 100); do
            if (exec 3<>"/dev/tcp/127.0.0.1/${n}9092") 2>/dev/null; then break; fi
            if ! kill -0 "${PIDS[$((n - 1))]}" 2>/dev/null; then cat "$DIR/node$n.log"; exit 1; fi
            sleep 0.1
        done
    done
    echo "strata pids ${PIDS[*]} on 127.0.0.1:{1,2,3}9092, data in $DIR"
    target/release/strata-bench \
        --bootstrap 127.0.0.1:19092,127.0.0.1:29092,127.0.0.1:39092 \
        --expect-brokers 3 --replication-factor 3 --partitions 8 --acks -1 \
        --message-size 1024 --total-bytes "${BENCH_TOTAL_BYTES:-1073741824}" \
        --broker-pid "${PIDS[0]}" --broker-pid "${PIDS[1]}" --broker-pid "${PIDS[2]}" "$@"
    for n in 1 2 3; do echo "node $n data dir size: $(du -sh "$DIR/data$n" | cut -f1)"; done
}

case "${1:-}" in
    -h | --help | help)
        sed -n '2,/^set -euo pipefail/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}"
        exit 0
        ;;
    quick | full | --quick | --full) exec bash tests/bench/suite.sh "$@" ;;
    --tansu) exec bash tests/bench/suite.sh full "$@" ;;
    cluster)
        shift
        cluster "$@"
        exit 0
        ;;
    own) shift ;;
esac

cargo build --release -p strata-node --bins
STRATA="${STRATA_BIN:-target/release/strata}"
PORT="${BENCH_PORT:-19092}"
DIR="$(mktemp -d -t strata-bench-XXXXXX)"
"$STRATA" --data-dir "$DIR/data" --listen "127.0.0.1:$PORT" >"$DIR/strata.log" 2>&1 &
PID=$!
cleanup() {
    kill -TERM "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    rm -rf "$DIR"
}
trap cleanup EXIT
for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then break; fi
    if ! kill -0 "$PID" 2>/dev/null; then cat "$DIR/strata.log"; exit 1; fi
    sleep 0.1
done
echo "strata pid $PID on 127.0.0.1:$PORT, data in $DIR"
target/release/strata-bench --bootstrap "127.0.0.1:$PORT" --broker-pid "$PID" "$@"
echo "data dir size: $(du -sh "$DIR/data" | cut -f1)"
