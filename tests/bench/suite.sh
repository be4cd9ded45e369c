#!/usr/bin/env bash
# The benchmark suite behind `bash tests/bench.sh quick|full [--tansu]` (see there and
# tests/bench/README.md): every figure of issue #14's "The benchmark", driven with Strata's own
# strata-bench and with librdkafka's rdkafka_performance, each against fresh nodes on temporary
# data dirs, medians of 3 runs (1 with quick), one markdown table at the end, also written to
# target/bench/last.md (the raw measurements to target/bench/last.tsv, the logs to
# target/bench/logs/).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

MODE=full
WITH_TANSU=0
for arg in "$@"; do
    case "$arg" in
        quick | --quick) MODE=quick ;;
        full | --full) MODE=full ;;
        --tansu) WITH_TANSU=1 ;;
        *) echo "suite.sh: unknown argument $arg (quick, full, --tansu)" >&2; exit 2 ;;
    esac
done

# Sizes: message counts per run. quick is about a minute in all.
if [[ "$MODE" == quick ]]; then
    RUNS="${BENCH_RUNS:-1}" N1K=200000 N100=1000000 LAT_SECS=10 DISK_LAT_SECS=5
else
    RUNS="${BENCH_RUNS:-3}" N1K=1000000 N100=5000000 LAT_SECS=60 DISK_LAT_SECS=20
fi
PARTITIONS="${BENCH_PARTITIONS:-8}"
TIMEOUT="${BENCH_TIMEOUT:-900}"
PORT=19092 # the single node (and Tansu); the cluster uses 19092, 29092 and 39092

# One suite at a time: two would share the ports and the CPUs, and measure each other.
mkdir -p target/bench
exec 9>target/bench/.lock
if ! flock -n 9; then
    echo "another tests/bench.sh quick/full is running (target/bench/.lock)" >&2
    exit 1
fi

echo "== build =="
cargo build --release -p strata-node --bins
STRATA="${STRATA_BIN:-target/release/strata}"
SB=target/release/strata-bench
RDK="$(bash tests/bench/rdkafka.sh | tail -n 1)"
RDK_LINKED="$(cat target/bench-tools/rdkafka/LINKED)"
command -v stdbuf >/dev/null || { echo "suite.sh needs stdbuf (coreutils)" >&2; exit 1; }

for port in 19092 19093 29092 29093 39092 39093; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "port $port is in use; stop whatever listens there first" >&2
        exit 1
    fi
done

WORK="$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/strata-bench-suite-XXXXXX")"
LOGS="$WORK/logs"
RESULTS_DIR=target/bench
RESULTS="$RESULTS_DIR/last.tsv"
mkdir -p "$LOGS" "$RESULTS_DIR"
: >"$RESULTS"

# shellcheck source=tests/bench/lib.sh
source tests/bench/lib.sh
# shellcheck source=tests/bench/tansu.sh
source tests/bench/tansu.sh
# shellcheck source=tests/bench/startup.sh
source tests/bench/startup.sh

cleanup() {
    stop_all
    rm -rf "$RESULTS_DIR/logs"
    cp -r "$LOGS" "$RESULTS_DIR/logs" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
TOTAL=$((13 + WITH_TANSU))
STEP=0
step() { STEP=$((STEP + 1)); STEP_NAME="$1"; }
# One step: `run_step NAME FUNCTION [ARGS...]`. BENCH_ONLY=<bash regex> runs only the steps whose
# name matches (e.g. BENCH_ONLY='RF 3' for the cluster figures), for a quick look at one change.
run_step() {
    local name="$1"
    shift
    [[ -n "${BENCH_ONLY:-}" && ! "$name" =~ $BENCH_ONLY ]] && return 0
    step "$name"
    "$@"
}
# "[3/9] produce 1 KiB fsync off, rdkafka_performance run 2/3 ... " (the result follows)
progress() { printf '[%d/%d] %s, %s run %d/%d ... ' "$STEP" "$TOTAL" "$STEP_NAME" "$1" "$2" "$RUNS"; }
done_line() { echo "$1 (broker ${CPU_S} CPU s, peak RSS ${RSS_MB} MB)"; }
cluster_done_line() { echo "$1 (3 brokers: ${CPU_S} CPU s in all, largest peak RSS ${RSS_MB} MB)"; }
failed() { # id client run log
    record "$1" "$2" "$3" ERR
    echo "FAILED; last lines of $4:"
    tail -n 8 "$4" 2>/dev/null | sed "s/^/    /" || true
}

topic() { # bootstrap topic partitions [topic.py args...]
    local bootstrap="$1" name="$2" partitions="$3"
    shift 3
    python3 tests/bench/topic.py --bootstrap "$bootstrap" --topic "$name" \
        --partitions "$partitions" "$@" >>"$LOGS/topics.log" 2>&1
}

# The strata arguments of each single-node configuration.
FSYNC_ON=()
FSYNC_OFF=(--set log.fsync.before.ack=false)

CLIENTS=(strata-bench rdkafka_performance)

# One produce figure on one fresh node: ID, what, message size, count, msg/s or MB/s, strata args.
produce_step() { # id size count unit [strata args...]
    local id="$1" size="$2" count="$3" unit="$4" run client name out dir
    shift 4
    for ((run = 1; run <= RUNS; run++)); do
        for client in "${CLIENTS[@]}"; do
            progress "$client" "$run"
            name="$id-$client-r$run"
            dir="$WORK/$name"
            if ! node_start "$dir" "$PORT" "$name" "$@" || ! topic "127.0.0.1:$PORT" bench "$PARTITIONS"; then
                failed "$id" "$client" "$run" "$LOGS/$name.log"
                nodes_stop
                continue
            fi
            measure_begin
            if [[ "$client" == strata-bench ]]; then
                sb_produce "$LOGS/$name.client.log" "127.0.0.1:$PORT" bench "$PARTITIONS" "$size" "$count" || true
                out="$CLIENT_OUT"
            else
                rdk_produce "$LOGS/$name.client.log" "127.0.0.1:$PORT" bench "$size" "$count" || true
                out="$CLIENT_OUT"
            fi
            measure_end "$id" "$client" "$run"
            nodes_stop
            rm -rf "$dir"
            if [[ -z "$out" ]]; then
                failed "$id" "$client" "$run" "$LOGS/$name.client.log"
                continue
            fi
            read -r mbs msgs _ <<<"$out"
            if [[ "$unit" == msg/s ]]; then
                record "$id" "$client" "$run" "$msgs"
                done_line "$msgs msg/s"
            else
                record "$id" "$client" "$run" "$mbs"
                done_line "$mbs MB/s"
            fi
        done
    done
}

# Fills a fresh node with N1K x 1 KiB (rdkafka_performance, not measured), then for each client
# restarts the node (a fresh process, so its CPU and peak RSS are the consume's alone) and
# reads everything from offset 0.
consume_step() {
    local run client name dir out
    for ((run = 1; run <= RUNS; run++)); do
        name="consume-r$run"
        dir="$WORK/$name"
        printf '[%d/%d] %s, preload %d x 1 KiB, run %d/%d ... ' "$STEP" "$TOTAL" "$STEP_NAME" "$N1K" "$run" "$RUNS"
        if ! node_start "$dir" "$PORT" "$name" || ! topic "127.0.0.1:$PORT" bench "$PARTITIONS" \
            || ! rdk_produce "$LOGS/$name.preload.log" "127.0.0.1:$PORT" bench 1024 "$N1K"; then
            for client in "${CLIENTS[@]}"; do record consume "$client" "$run" ERR; done
            echo "FAILED; see $LOGS/$name.log and $name.preload.log"
            nodes_stop
            rm -rf "$dir"
            continue
        fi
        nodes_stop
        echo "done"
        for client in "${CLIENTS[@]}"; do
            progress "$client" "$run"
            if ! node_start "$dir" "$PORT" "$name"; then
                failed consume "$client" "$run" "$LOGS/$name.log"
                nodes_stop
                continue
            fi
            measure_begin
            if [[ "$client" == strata-bench ]]; then
                sb_consume "$LOGS/$name-$client.client.log" "127.0.0.1:$PORT" bench "$PARTITIONS" 1024 || true
                out="$CLIENT_OUT"
            else
                rdk_consume "$LOGS/$name-$client.client.log" "127.0.0.1:$PORT" bench "$PARTITIONS" "$N1K" || true
                out="$CLIENT_OUT"
            fi
            measure_end consume "$client" "$run"
            nodes_stop
            if [[ -z "$out" ]]; then
                failed consume "$client" "$run" "$LOGS/$name-$client.client.log"
                continue
            fi
            read -r mbs _ <<<"$out"
            record consume "$client" "$run" "$mbs"
            done_line "$mbs MB/s"
        done
        rm -rf "$dir"
    done
}

# End-to-end latency at 1,000 msg/s of 100 B: an rdkafka_performance consumer (-l) reads the
# producer's send timestamps out of the payloads ("LATENCY:<wall clock us>") and writes each
# message's latency to a file (-A); the producer (-l -A) writes its produce-to-ack latencies.
# linger.ms=0: a lone message is sent at once. Sets LAT_OUT to "p50 p99 p99.9 ack-p50 ack-p99"
# (ms). Not run in a $(...) subshell: the consumer must be in BG_PIDS for the trap to stop it,
# and measure_begin's reading must reach the caller's measure_end.
latency_run() { # name bootstrap
    local name="$1" bootstrap="$2" count=$((LAT_SECS * 1000)) pid e2e ack
    topic "$bootstrap" lat 1 || return 1
    stdbuf -oL timeout "$TIMEOUT" "$RDK" -C -t lat -b "$bootstrap" -p 0 -o end -l \
        -A "$WORK/$name.e2e" -c "$count" >"$LOGS/$name.consumer.log" 2>&1 &
    pid=$!
    BG_PIDS+=("$pid")
    for _ in $(seq 1 300); do
        grep -q 'reached end' "$LOGS/$name.consumer.log" && break
        sleep 0.1
    done
    grep -q 'reached end' "$LOGS/$name.consumer.log" || return 1
    measure_begin
    run_client "$LOGS/$name.producer.log" "$RDK" -P -t lat -b "$bootstrap" -p 0 -s 100 -r 1000 \
        -c "$count" -a -1 -X linger.ms=0 -l -A "$WORK/$name.ack" || return 1
    wait "$pid" || return 1
    BG_PIDS=()
    e2e="$(python3 tests/bench/report.py latency "$WORK/$name.e2e")" || return 1
    ack="$(python3 tests/bench/report.py latency "$WORK/$name.ack")" || return 1
    LAT_OUT="$(echo "$e2e" "$ack" | awk '{print $1, $2, $3, $5, $6}')"
}

latency_step() {
    local run name dir out p50 p99 p999 a50 a99
    for ((run = 1; run <= RUNS; run++)); do
        progress rdkafka_performance "$run"
        name="lat-r$run"
        dir="$WORK/$name"
        out=""
        if node_start "$dir" "$PORT" "$name" && latency_run "$name" "127.0.0.1:$PORT"; then
            measure_end lat.p50 rdkafka_performance "$run"
            out="$LAT_OUT"
        fi
        stop_all
        rm -rf "$dir"
        if [[ -z "$out" ]]; then
            failed lat.p50 rdkafka_performance "$run" "$LOGS/$name.consumer.log"
            continue
        fi
        read -r p50 p99 p999 a50 a99 <<<"$out"
        record lat.p50 rdkafka_performance "$run" "$p50"
        record lat.p99 rdkafka_performance "$run" "$p99"
        record lat.p999 rdkafka_performance "$run" "$p999"
        record ack.p50 rdkafka_performance "$run" "$a50"
        record ack.p99 rdkafka_performance "$run" "$a99"
        done_line "p50 $p50 ms, p99 $p99 ms, p99.9 $p999 ms; produce-to-ack p99 $a99 ms"
    done
}

# Three fresh local nodes per run; a topic of replication factor RF (min.insync.replicas 2
# when RF is 3), N1K x 1 KiB with acks=all.
cluster_step() { # id rf [strata args...]
    local id="$1" rf="$2" run client name dir out configs=()
    shift 2
    ((rf >= 2)) && configs=(--config min.insync.replicas=2)
    for ((run = 1; run <= RUNS; run++)); do
        for client in "${CLIENTS[@]}"; do
            progress "$client" "$run"
            name="$id-$client-r$run"
            dir="$WORK/$name"
            if ! cluster_start "$dir" "$name" "$@" \
                || ! topic "$CLUSTER_BOOTSTRAP" bench "$PARTITIONS" --replication-factor "$rf" \
                    --expect-brokers 3 "${configs[@]}"; then
                failed "$id" "$client" "$run" "$LOGS/topics.log"
                nodes_stop
                rm -rf "$dir"
                continue
            fi
            measure_begin
            if [[ "$client" == strata-bench ]]; then
                sb_produce "$LOGS/$name.client.log" "$CLUSTER_BOOTSTRAP" bench "$PARTITIONS" 1024 "$N1K" \
                    --expect-brokers 3 --replication-factor "$rf" || true
                out="$CLIENT_OUT"
            else
                rdk_produce "$LOGS/$name.client.log" "$CLUSTER_BOOTSTRAP" bench 1024 "$N1K" || true
                out="$CLIENT_OUT"
            fi
            measure_end "$id" "$client" "$run"
            nodes_stop
            rm -rf "$dir"
            if [[ -z "$out" ]]; then
                failed "$id" "$client" "$run" "$LOGS/$name.client.log"
                continue
            fi
            read -r mbs _ <<<"$out"
            record "$id" "$client" "$run" "$mbs"
            cluster_done_line "$mbs MB/s"
        done
    done
}

# 16 rdkafka_performance processes at once against one node, N1K x 1 KiB between them; the
# figure is their aggregate rate (all values delivered / wall time), the point is peak RSS.
p16_step() {
    local run name dir each=$((N1K / 16)) i t0 t1 pids total ok out
    for ((run = 1; run <= RUNS; run++)); do
        progress "16 x rdkafka_performance" "$run"
        name="p16-r$run"
        dir="$WORK/$name"
        if ! node_start "$dir" "$PORT" "$name" || ! topic "127.0.0.1:$PORT" bench "$PARTITIONS"; then
            failed p16 "16 x rdkafka_performance" "$run" "$LOGS/$name.log"
            nodes_stop
            continue
        fi
        measure_begin
        pids=()
        t0="$(date +%s.%N)"
        for ((i = 1; i <= 16; i++)); do
            timeout "$TIMEOUT" "$RDK" -P -t bench -b "127.0.0.1:$PORT" -s 1024 -c "$each" \
                "${RDK_PRODUCE[@]}" >"$LOGS/$name.client$i.log" 2>&1 &
            pids+=("$!")
        done
        BG_PIDS=("${pids[@]}")
        ok=1
        for i in "${pids[@]}"; do wait "$i" || ok=0; done
        BG_PIDS=()
        t1="$(date +%s.%N)"
        measure_end p16 "16 x rdkafka_performance" "$run"
        nodes_stop
        rm -rf "$dir"
        total=0
        for ((i = 1; i <= 16; i++)); do
            rdk_produce_summary "$LOGS/$name.client$i.log" "$each" || { ok=0; continue; }
            total=$((total + $(echo "$CLIENT_OUT" | cut -d' ' -f3)))
        done
        if ((!ok)); then
            failed p16 "16 x rdkafka_performance" "$run" "$LOGS/$name.client1.log"
            continue
        fi
        out="$(awk -v n="$total" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", n * 1024 / (b - a) / 1e6}')"
        record p16 "16 x rdkafka_performance" "$run" "$out"
        done_line "$out MB/s in all"
    done
}

# The disk's own fsync'd write rate, on the file system of the data dirs.
disk_step() {
    local run secs mbs ops p50 p99 p999
    for ((run = 1; run <= RUNS; run++)); do
        printf '[%d/%d] %s, run %d/%d ... ' "$STEP" "$TOTAL" "$STEP_NAME" "$run" "$RUNS"
        # dd's last line: "N bytes (...) copied, S s, R MB/s"
        secs="$(dd if=/dev/zero of="$WORK/dd" bs=1M count=256 oflag=dsync 2>&1 | tail -n 1 | sed -n 's/.* copied, \([0-9.e-]*\) s,.*/\1/p')"
        mbs="$(awk -v s="$secs" 'BEGIN {printf "%.1f", 268435456 / s / 1e6}')"
        rm -f "$WORK/dd"
        secs="$(dd if=/dev/zero of="$WORK/dd" bs=4k count=2000 oflag=dsync 2>&1 | tail -n 1 | sed -n 's/.* copied, \([0-9.e-]*\) s,.*/\1/p')"
        ops="$(awk -v s="$secs" 'BEGIN {printf "%.0f", 2000 / s}')"
        rm -f "$WORK/dd"
        record disk.write dd "$run" "$mbs"
        record disk.fsync dd "$run" "$ops"
        # The floor under figure (5): 100 B appends, each fdatasync'd, 1,000 a second.
        read -r p50 p99 p999 _ <<<"$(python3 tests/bench/disk_latency.py "$WORK" --seconds "$DISK_LAT_SECS")"
        record disk.lat.p50 fdatasync "$run" "$p50"
        record disk.lat.p99 fdatasync "$run" "$p99"
        record disk.lat.p999 fdatasync "$run" "$p999"
        echo "$mbs MB/s with bs=1M, $ops fsync'd 4 KiB writes/s, 100 B append+fdatasync p50 $p50 ms p99 $p99 ms p99.9 $p999 ms"
    done
}

echo "== benchmark ($MODE: $RUNS run(s) per figure; data dirs under $WORK) =="
run_step "disk: dd oflag=dsync" disk_step
run_step "produce 1 KiB fsync on" produce_step p1k.on 1024 "$N1K" MB/s "${FSYNC_ON[@]}"
run_step "produce 1 KiB fsync off" produce_step p1k.off 1024 "$N1K" MB/s "${FSYNC_OFF[@]}"
run_step "consume 1 KiB from offset 0" consume_step
run_step "produce 100 B" produce_step p100 100 "$N100" msg/s
run_step "end-to-end latency, 1,000 msg/s of 100 B" latency_step
run_step "3 nodes, RF 3, min ISR 2" cluster_step rf3 3
run_step "3 nodes, RF 1" cluster_step rf1 1
# The same two without fsync before ack: what replication costs when the shared disk is not
# the bound (three nodes on one disk write RF 3 times the data).
run_step "3 nodes, RF 3, min ISR 2, fsync off" cluster_step rf3.off 3 "${FSYNC_OFF[@]}"
run_step "3 nodes, RF 1, fsync off" cluster_step rf1.off 1 "${FSYNC_OFF[@]}"
run_step "16 concurrent producers" p16_step
# Goal 5 (tests/bench/startup.sh): many partitions and fast start-up.
run_step "start-up with $STARTUP_PARTITIONS partitions" startup_step
run_step "3 nodes, RF 3, $STARTUP_PARTITIONS partitions" many_partitions_step
if ((WITH_TANSU)); then
    run_step "Tansu (memory engine)" tansu_step
fi

echo
echo "== results =="
DIRTY="$(git diff --quiet HEAD 2>/dev/null || echo ', uncommitted changes')"
META=(
    "# Strata benchmark ($MODE), $(date -u '+%Y-%m-%d %H:%M UTC'), git $(git rev-parse --short HEAD)$DIRTY"
    ""
    "Host: $(nproc) CPUs, load average $LOAD_START at the start and $(cut -d' ' -f1-3 /proc/loadavg) at the end (other jobs make the numbers noisy); data dirs on $(df --output=source,fstype "$WORK" | tail -n 1 | tr -s ' ')."
    "Clients: strata-bench (idempotent, $PARTITIONS partitions, 4 requests in flight each, batches of about 1,000,000 B); rdkafka_performance with $RDK_LINKED (librdkafka defaults, idempotence off; acks=all, linger.ms=5, batch.size=1000000)."
    "Each figure: $N1K x 1 KiB or $N100 x 100 B messages per run, topic of $PARTITIONS partitions, fresh nodes; median of $RUNS run(s). MB = 10^6 bytes of message values. Broker CPU s = utime+stime during the run (summed over the cluster's nodes), peak RSS = VmHWM (the largest node)."
)
META_ARGS=()
for m in "${META[@]}"; do META_ARGS+=(--meta "$m"); done
python3 tests/bench/report.py table "$RESULTS" "${META_ARGS[@]}" --out "$RESULTS_DIR/last.md"
echo
echo "table written to $RESULTS_DIR/last.md; measurements in $RESULTS; logs in $RESULTS_DIR/logs/"
