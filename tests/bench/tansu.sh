# shellcheck shell=bash
# Sourced by tests/bench/suite.sh for `--tansu`: installs Tansu (github.com/tansu-io/tansu, the
# crate `tansu`, binary `tansu`) under target/bench-tools/tansu once, and runs the produce,
# consume and latency workloads against it with its memory engine (`memory://`, which needs the
# crate's `dynostore` feature), with rdkafka_performance only, so that report.py can print
# Strata / Tansu for the same client. Needs lib.sh's helpers and suite.sh's variables.

TANSU_ROOT=target/bench-tools/tansu
TANSU="$TANSU_ROOT/bin/tansu"

# Installs Tansu unless it is there; on failure says why and returns 1 (the suite goes on).
tansu_install() {
    [[ -x "$TANSU" ]] && return 0
    local log="$LOGS/tansu-install.log"
    echo "installing Tansu: cargo install tansu --locked --features dynostore,libsql" \
        "--root $TANSU_ROOT (this takes a while; log in $log)"
    if cargo install tansu --locked --features dynostore,libsql --root "$TANSU_ROOT" >"$log" 2>&1; then
        return 0
    fi
    # The crate's own Cargo.lock may no longer build with this toolchain; try fresh versions.
    echo "  --locked failed; retrying without it"
    if cargo install tansu --features dynostore,libsql --root "$TANSU_ROOT" >>"$log" 2>&1; then
        return 0
    fi
    echo "  Tansu did not build; skipping it. Last lines of the log:"
    grep -E '^(error|warning: build failed)' "$log" | head -n 5 | sed 's/^/    /'
    tail -n 5 "$log" | sed 's/^/    /'
    return 1
}

tansu_start() { # name
    local log="$LOGS/$1.log"
    "$TANSU" broker --storage-engine "memory://tansu/" \
        --listener-url "tcp://127.0.0.1:$PORT" \
        --advertised-listener-url "tcp://127.0.0.1:$PORT" >>"$log" 2>&1 &
    NODE_PIDS+=("$!")
    wait_port "$PORT" "$!" "$log"
}

# Records tansu.p1k, tansu.consume, tansu.p100 and tansu.lat.* for rdkafka_performance. The
# consume reads what the produce run wrote, in the same process (memory does not survive a
# restart).
tansu_step() {
    local client=rdkafka_performance run name out p50 p99 p999
    if ! tansu_install; then
        return 0
    fi
    echo "[$STEP/$TOTAL] $STEP_NAME: $("$TANSU" --version 2>&1 | head -n 1)"
    for ((run = 1; run <= RUNS; run++)); do
        name="tansu-p1k-r$run"
        progress "produce 1 KiB, $client" "$run"
        if tansu_start "$name" && topic "127.0.0.1:$PORT" bench "$PARTITIONS"; then
            measure_begin
            rdk_produce "$LOGS/$name.client.log" "127.0.0.1:$PORT" bench 1024 "$N1K" || true
            out="$CLIENT_OUT"
            measure_end tansu.p1k "$client" "$run"
            if [[ -n "$out" ]]; then
                read -r mbs _ <<<"$out"
                record tansu.p1k "$client" "$run" "$mbs"
                done_line "$mbs MB/s"
                progress "consume 1 KiB, $client" "$run"
                measure_begin
                rdk_consume "$LOGS/$name.consume.log" "127.0.0.1:$PORT" bench "$PARTITIONS" "$N1K" || true
                out="$CLIENT_OUT"
                measure_end tansu.consume "$client" "$run"
                if [[ -n "$out" ]]; then
                    read -r mbs _ <<<"$out"
                    record tansu.consume "$client" "$run" "$mbs"
                    done_line "$mbs MB/s"
                else
                    failed tansu.consume "$client" "$run" "$LOGS/$name.consume.log"
                fi
            else
                failed tansu.p1k "$client" "$run" "$LOGS/$name.client.log"
            fi
        else
            failed tansu.p1k "$client" "$run" "$LOGS/$name.log"
        fi
        nodes_stop

        name="tansu-p100-r$run"
        progress "produce 100 B, $client" "$run"
        out=""
        if tansu_start "$name" && topic "127.0.0.1:$PORT" bench "$PARTITIONS"; then
            measure_begin
            rdk_produce "$LOGS/$name.client.log" "127.0.0.1:$PORT" bench 100 "$N100" || true
            out="$CLIENT_OUT"
            measure_end tansu.p100 "$client" "$run"
        fi
        nodes_stop
        if [[ -n "$out" ]]; then
            read -r _ msgs _ <<<"$out"
            record tansu.p100 "$client" "$run" "$msgs"
            done_line "$msgs msg/s"
        else
            failed tansu.p100 "$client" "$run" "$LOGS/$name.client.log"
        fi

        name="tansu-lat-r$run"
        progress "end-to-end latency, $client" "$run"
        out=""
        if tansu_start "$name" && latency_run "$name" "127.0.0.1:$PORT"; then
            measure_end tansu.lat.p50 "$client" "$run"
            out="$LAT_OUT"
        fi
        stop_all
        if [[ -n "$out" ]]; then
            read -r p50 p99 p999 _ <<<"$out"
            record tansu.lat.p50 "$client" "$run" "$p50"
            record tansu.lat.p99 "$client" "$run" "$p99"
            record tansu.lat.p999 "$client" "$run" "$p999"
            done_line "p50 $p50 ms, p99 $p99 ms, p99.9 $p999 ms"
        else
            failed tansu.lat.p50 "$client" "$run" "$LOGS/$name.consumer.log"
        fi
    done
}
