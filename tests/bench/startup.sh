# shellcheck shell=bash
# Sourced by tests/bench/suite.sh: issue #14's goal 5, many partitions and fast start-up.
#
# startup_step: one fresh node, a topic of STARTUP_PARTITIONS (1,000) partitions filled with
# STARTUP_BYTES of 1 KiB messages by strata-bench (acks=all, fsync before ack off: the fill is
# not measured, only timed), then
#   1. a clean stop (SIGTERM; its duration is recorded: flush and checkpoint of every log),
#   2. a restart timed until the node serves every partition (startup.clean),
#   3. STARTUP_BYTES/10 more (fsync before ack on, so every acknowledged batch is durable), a
#      kill -9 and a restart timed the same way (startup.unclean: recovery scans what lies above
#      the recovery point written at the clean stop).
# "Serves every partition": the node binds its listener before it opens (recovers) its logs and
# accepts only once every log is open, so an open port proves nothing. tests/bench/offsets.py
# sends one ListOffsets (latest) naming every partition, retrying until the answer has all of
# them without error, and checks the offsets equal those read before the stop. The time is
# from just before the node is started to that answer. The node's CPU seconds until then and
# its RSS right after (VmRSS, also the peak VmHWM) are recorded with it.
#
# many_partitions_step: three nodes, a topic of STARTUP_PARTITIONS partitions with RF 3 (min
# ISR 2), N1K x 1 KiB with strata-bench, acks=all: report.py sets it against the 8-partition
# RF 3 figure (rf3), goal >= 0.5.
#
# Expects suite.sh's variables (STRATA, SB, WORK, LOGS, RUNS, N1K, MODE, PORT,
# CLUSTER_BOOTSTRAP) and lib.sh's helpers.

STARTUP_PARTITIONS="${BENCH_STARTUP_PARTITIONS:-1000}"
if [[ "$MODE" == quick ]]; then
    STARTUP_BYTES="${BENCH_STARTUP_BYTES:-1000000000}"
else
    STARTUP_BYTES="${BENCH_STARTUP_BYTES:-10000000000}"
fi
# A clean stop fsyncs and checkpoints every log; give it this long before the KILL.
STARTUP_STOP_SECS=600

# strata-bench with small batches (64 KiB): 1,000 partitions x 4 requests in flight.
startup_fill() { # log bytes
    run_client "$1" "$SB" --bootstrap "127.0.0.1:$PORT" --topic many \
        --partitions "$STARTUP_PARTITIONS" --message-size 1024 --total-bytes "$2" \
        --batch-bytes 65536 --acks -1 --produce-only
}

startup_offsets() { # logname [offsets.py args...]
    local name="$1"
    shift
    python3 tests/bench/offsets.py --bootstrap "127.0.0.1:$PORT" --topic many \
        --partitions "$STARTUP_PARTITIONS" "$@" 2>>"$LOGS/$name.probe.log"
}

# Stops the node with TERM and waits up to STARTUP_STOP_SECS; STOP_SECS = the seconds it took.
startup_stop() {
    local pid="${NODE_PIDS[0]}" t0 i
    t0="$(date +%s.%N)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < STARTUP_STOP_SECS * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    nodes_stop
    STOP_SECS="$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')"
}

# Starts the node on DIR and times it until it serves every partition with the offsets saved in
# EXPECT; records ID (seconds), ID.cpu, ID.rss (VmRSS after start-up) and ID.hwm (VmHWM).
startup_time() { # id run dir name expect
    local id="$1" run="$2" dir="$3" name="$4" expect="$5" t0 pid secs ticks rss hwm
    t0="$(date +%s.%N)"
    "$STRATA" --data-dir "$dir/data" --listen "127.0.0.1:$PORT" >>"$LOGS/$name.log" 2>&1 &
    pid=$!
    NODE_PIDS+=("$pid")
    if ! startup_offsets "$name" --expect "$expect" >/dev/null; then
        return 1
    fi
    secs="$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.2f", b - a}')"
    ticks="$(cpu_ticks)"
    rss="$(awk '/^VmRSS:/ {printf "%.1f", $2 * 1024 / 1e6}' "/proc/$pid/status")"
    hwm="$(awk '/^VmHWM:/ {printf "%.1f", $2 * 1024 / 1e6}' "/proc/$pid/status")"
    record "$id" strata-bench "$run" "$secs"
    record "$id.cpu" strata-bench "$run" "$(awk -v t="$ticks" -v h="$CLK_TCK" 'BEGIN {printf "%.2f", t / h}')"
    record "$id.rss" strata-bench "$run" "$rss"
    STARTUP_OUT="$secs s (CPU $(awk -v t="$ticks" -v h="$CLK_TCK" 'BEGIN {printf "%.2f", t / h}') s, RSS $rss MB, peak $hwm MB)"
}

startup_step() {
    local run name dir t0 fill extra=$((STARTUP_BYTES / 10))
    for ((run = 1; run <= RUNS; run++)); do
        name="startup-r$run"
        dir="$WORK/$name"
        printf '[%d/%d] %s, fill %d partitions with %d B, run %d/%d ... ' "$STEP" "$TOTAL" \
            "$STEP_NAME" "$STARTUP_PARTITIONS" "$STARTUP_BYTES" "$run" "$RUNS"
        t0="$(date +%s.%N)"
        if ! node_start "$dir" "$PORT" "$name" --set log.fsync.before.ack=false \
            || ! startup_fill "$LOGS/$name.fill.log" "$STARTUP_BYTES" \
            || ! startup_offsets "$name" --save "$dir/offsets" >/dev/null; then
            for id in startup.clean startup.unclean; do record "$id" strata-bench "$run" ERR; done
            echo "FAILED; see $LOGS/$name.log and $name.fill.log"
            nodes_stop
            rm -rf "$dir"
            continue
        fi
        fill="$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')"
        startup_stop
        record startup.fill strata-bench "$run" "$fill"
        record startup.stop strata-bench "$run" "$STOP_SECS"
        echo "filled in $fill s ($(du -sh "$dir/data" | cut -f1)), clean stop $STOP_SECS s"

        printf '[%d/%d] %s, restart after a clean stop, run %d/%d ... ' "$STEP" "$TOTAL" "$STEP_NAME" "$run" "$RUNS"
        if startup_time startup.clean "$run" "$dir" "$name" "$dir/offsets"; then
            echo "$STARTUP_OUT"
        else
            record startup.clean strata-bench "$run" ERR
            echo "FAILED; see $LOGS/$name.log and $name.probe.log"
        fi

        printf '[%d/%d] %s, %d B more, kill -9, restart, run %d/%d ... ' "$STEP" "$TOTAL" "$STEP_NAME" "$extra" "$run" "$RUNS"
        if ((${#NODE_PIDS[@]})) && startup_fill "$LOGS/$name.more.log" "$extra" \
            && startup_offsets "$name" --save "$dir/offsets" >/dev/null; then
            kill -KILL "${NODE_PIDS[0]}" || true
            nodes_stop 2>/dev/null # not bash's "Killed" line
            if startup_time startup.unclean "$run" "$dir" "$name" "$dir/offsets"; then
                echo "$STARTUP_OUT"
            else
                record startup.unclean strata-bench "$run" ERR
                echo "FAILED; see $LOGS/$name.log and $name.probe.log"
            fi
        else
            record startup.unclean strata-bench "$run" ERR
            echo "FAILED; see $LOGS/$name.log and $name.more.log"
        fi
        nodes_stop
        rm -rf "$dir"
    done
}

# Three fresh nodes, a topic of STARTUP_PARTITIONS partitions at RF 3 (min ISR 2), N1K x 1 KiB.
many_partitions_step() {
    local run name dir client=strata-bench
    for ((run = 1; run <= RUNS; run++)); do
        progress "$client" "$run"
        name="rf3p-r$run"
        dir="$WORK/$name"
        if ! cluster_start "$dir" "$name" \
            || ! topic "$CLUSTER_BOOTSTRAP" bench "$STARTUP_PARTITIONS" --replication-factor 3 \
                --expect-brokers 3 --config min.insync.replicas=2; then
            failed rf3.many "$client" "$run" "$LOGS/topics.log"
            nodes_stop
            rm -rf "$dir"
            continue
        fi
        measure_begin
        # 64 KiB batches: N1K x 1 KiB over 1,000 partitions is 200 KiB each in quick mode.
        sb_produce "$LOGS/$name.client.log" "$CLUSTER_BOOTSTRAP" bench "$STARTUP_PARTITIONS" 1024 "$N1K" \
            --expect-brokers 3 --replication-factor 3 --batch-bytes 65536 || true
        measure_end rf3.many "$client" "$run"
        nodes_stop
        rm -rf "$dir"
        if [[ -z "$CLIENT_OUT" ]]; then
            failed rf3.many "$client" "$run" "$LOGS/$name.client.log"
            continue
        fi
        read -r mbs _ <<<"$CLIENT_OUT"
        record rf3.many "$client" "$run" "$mbs"
        cluster_done_line "$mbs MB/s"
    done
}
