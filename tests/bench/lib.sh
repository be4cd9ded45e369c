# shellcheck shell=bash
# Sourced by tests/bench/suite.sh: the processes it starts (nodes, clients), what it reads of
# them in /proc, and the two benchmark clients with the parsing of their summary lines.
#
# Expects from the caller: STRATA (the binary), SB (strata-bench), RDK (rdkafka_performance),
# WORK (the run's temp dir; node data dirs live under it), LOGS (where node and client logs
# go), RESULTS (the measurements file report.py reads) and TIMEOUT (seconds per client run).

CLK_TCK="$(getconf CLK_TCK)"
NODE_PIDS=()  # brokers running now (strata or tansu)
BG_PIDS=()    # clients started in the background

# Stops every process this script started and waits for them: clients first, then brokers
# (TERM, and KILL after 15 s).
stop_all() {
    local pid
    for pid in "${BG_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${BG_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    BG_PIDS=()
    nodes_stop
}

nodes_stop() {
    local pid
    for pid in "${NODE_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for _ in $(seq 1 150); do
        local alive=0
        for pid in "${NODE_PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.1
    done
    for pid in "${NODE_PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    for pid in "${NODE_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    NODE_PIDS=()
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Waits until PORT accepts connections; fails (printing the log's tail) if PID exits first.
wait_port() { # port pid log
    for _ in $(seq 1 200); do
        port_open "$1" && return 0
        if ! kill -0 "$2" 2>/dev/null; then
            echo "broker pid $2 exited before listening on $1; last lines of $3:" >&2
            tail -n 20 "$3" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "nothing listens on $1 after 20 s; see $3" >&2
    return 1
}

# One strata node on DIR/data listening on PORT; extra arguments go to strata.
node_start() { # dir port logname [strata args...]
    local dir="$1" port="$2" log="$LOGS/$3.log"
    shift 3
    "$STRATA" --data-dir "$dir/data" --listen "127.0.0.1:$port" "$@" >>"$log" 2>&1 &
    NODE_PIDS+=("$!")
    wait_port "$port" "$!" "$log"
}

# shellcheck disable=SC2034 # used by suite.sh
CLUSTER_BOOTSTRAP="127.0.0.1:19092,127.0.0.1:29092,127.0.0.1:39092"

# Three combined-mode nodes as in README "A local cluster" (and `bench.sh cluster`).
cluster_start() { # dir logname [strata args...]
    local dir="$1" log="$2" n
    shift 2
    local voters="1@127.0.0.1:19093,2@127.0.0.1:29093,3@127.0.0.1:39093"
    for n in 1 2 3; do
        "$STRATA" --data-dir "$dir/data$n" --set "node.id=$n" \
            --set "controller.quorum.voters=$voters" \
            --set "listeners=PLAINTEXT://127.0.0.1:${n}9092,CONTROLLER://127.0.0.1:${n}9093" \
            "$@" >>"$LOGS/$log-node$n.log" 2>&1 &
        NODE_PIDS+=("$!")
    done
    for n in 1 2 3; do
        wait_port "${n}9092" "${NODE_PIDS[$((n - 1))]}" "$LOGS/$log-node$n.log" || return 1
    done
}

# utime + stime of the brokers, in clock ticks (fields 14 and 15 of /proc/PID/stat, counted
# after the parenthesised command name, which may hold spaces).
cpu_ticks() {
    local pid stat total=0
    for pid in "${NODE_PIDS[@]}"; do
        stat="$(cat "/proc/$pid/stat" 2>/dev/null)" || continue
        stat="${stat##*) }"
        read -ra f <<<"$stat"
        total=$((total + f[11] + f[12]))
    done
    echo "$total"
}

# The largest VmHWM (peak resident set) of the brokers, in kB.
peak_rss_kb() {
    local pid kb max=0
    for pid in "${NODE_PIDS[@]}"; do
        kb="$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null)" || continue
        ((${kb:-0} > max)) && max="$kb"
    done
    echo "$max"
}

record() { # id client run value
    printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$RESULTS"
}

# Brackets a measured client run: the brokers' CPU seconds spent in between and their peak RSS
# (MB) are recorded as ID.cpu and ID.rss, and kept in CPU_S / RSS_MB for the progress line.
measure_begin() { CPU0="$(cpu_ticks)"; }
measure_end() { # id client run
    CPU_S="$(awk -v a="$CPU0" -v b="$(cpu_ticks)" -v t="$CLK_TCK" \
        'BEGIN {printf "%.2f", (b - a) / t}')"
    RSS_MB="$(awk -v kb="$(peak_rss_kb)" 'BEGIN {printf "%.1f", kb * 1024 / 1e6}')"
    record "$1.cpu" "$2" "$3" "$CPU_S"
    record "$1.rss" "$2" "$3" "$RSS_MB"
}

# Runs a client under `timeout` in the background and waits for it: bash runs a trap only
# once the foreground command has finished, but interrupts `wait` at once, so Ctrl-C or a TERM
# to the suite stops it promptly (the EXIT trap's stop_all stops the client, which timeout's
# own process group would otherwise keep from a terminal's Ctrl-C).
run_client() { # log command...
    local log="$1" pid rc=0 p keep=()
    shift
    timeout "$TIMEOUT" "$@" >"$log" 2>&1 &
    pid=$!
    BG_PIDS+=("$pid")
    wait "$pid" || rc=$?
    for p in "${BG_PIDS[@]}"; do [[ "$p" == "$pid" ]] || keep+=("$p"); done
    BG_PIDS=("${keep[@]}")
    return "$rc"
}

# The client functions below set CLIENT_OUT to their parsed figures (empty on failure) and
# return non-zero on failure; they are not run in $(...), for run_client's sake.

# ---- strata-bench ----

# Produces COUNT x SIZE bytes; CLIENT_OUT="MB/s msg/s" (MB = 10^6 bytes of message values).
# --batch-bytes counts values only; SIZE/(SIZE+12) of 1,000,000 makes batches of about
# 1,000,000 bytes with the records' own overhead (about 10 bytes each without key or
# headers), as librdkafka's batch.size=1000000 does, and under message.max.bytes (1,048,588).
sb_produce() { # log bootstrap topic partitions size count [strata-bench args...]
    local log="$1" bootstrap="$2" topic="$3" partitions="$4" size="$5" count="$6"
    shift 6
    CLIENT_OUT=""
    run_client "$log" "$SB" --bootstrap "$bootstrap" --topic "$topic" --partitions "$partitions" \
        --message-size "$size" --total-bytes "$((size * count))" \
        --batch-bytes "$((1000000 * size / (size + 12)))" \
        --acks -1 --produce-only "$@" || return 1
    # "  X MiB (B B, M msgs) in S s: R MiB/s, Q msgs/s, F failed requests, T retried"; S has
    # two decimals only, Q comes from the exact time.
    CLIENT_OUT="$(sed -n 's/.* msgs) in [0-9.]* s: [0-9.]* MiB\/s, \([0-9]*\) msgs\/s, \([0-9]*\) failed requests.*/\1 \2/p' "$log" \
        | awk -v size="$size" '$1 > 0 && $2 == 0 {printf "%.1f %.0f\n", $1 * size / 1e6, $1}')"
    [[ -n "$CLIENT_OUT" ]]
}

# Consumes the topic from its log start; CLIENT_OUT="MB/s msg/s" (message values: records x
# SIZE, as rdkafka_performance counts).
sb_consume() { # log bootstrap topic partitions size
    CLIENT_OUT=""
    run_client "$1" "$SB" --bootstrap "$2" --topic "$3" --partitions "$4" --consume-only || return 1
    # "  X MiB (R records) in S s: Y MiB/s, Q msgs/s, N retried fetches" (X and Y count whole
    # batches; Q comes from the exact time)
    CLIENT_OUT="$(sed -n 's/.* records) in [0-9.]* s: [0-9.]* MiB\/s, \([0-9]*\) msgs\/s, .*/\1/p' "$1" \
        | awk -v size="$5" '$1 > 0 {printf "%.1f %.0f\n", $1 * size / 1e6, $1}')"
    [[ -n "$CLIENT_OUT" ]]
}

# ---- rdkafka_performance ----

# librdkafka settings of every rdkafka_performance producer: acks=all, linger 5 ms, 1 MB
# batches (rdkafka_performance itself sets linger.ms=1000, retries 3, backoff 500 ms).
RDK_PRODUCE=(-a -1 -X linger.ms=5 -X batch.size=1000000)

# Produces COUNT x SIZE; CLIENT_OUT="MB/s msg/s delivered" from its final summary line; fails unless
# every message was delivered.
rdk_produce() { # log bootstrap topic size count [rdkafka_performance args...]
    local log="$1" bootstrap="$2" topic="$3" size="$4" count="$5"
    shift 5
    CLIENT_OUT=""
    run_client "$log" "$RDK" -P -t "$topic" -b "$bootstrap" -s "$size" -c "$count" \
        "${RDK_PRODUCE[@]}" "$@" || return 1
    rdk_produce_summary "$log" "$count"
}

# "% N messages produced (B bytes), D delivered (offset O, F failed) in T ms: R msgs/s and
# M MB/s, ..." (the last such line is the final one). Sets CLIENT_OUT as rdk_produce does.
rdk_produce_summary() { # log count
    CLIENT_OUT="$(grep 'messages produced' "$1" | tail -n 1 \
        | sed -n 's/.* \([0-9]*\) delivered (offset [-0-9]*, \([0-9]*\) failed) in [0-9]*ms: \([0-9]*\) msgs\/s and \([0-9.]*\) MB\/s.*/\1 \2 \3 \4/p' \
        | awk -v n="$2" '$1 == n && $2 == 0 {printf "%.1f %.0f %d\n", $4, $3, $1}')"
    [[ -n "$CLIENT_OUT" ]]
}

# Consumes at least COUNT messages from offset 0 of every partition; CLIENT_OUT="MB/s msg/s".
rdk_consume() { # log bootstrap topic partitions count
    local parts=() p
    for ((p = 0; p < $4; p++)); do parts+=(-p "$p"); done
    CLIENT_OUT=""
    run_client "$1" "$RDK" -C -t "$3" -b "$2" "${parts[@]}" -o beginning -e -c "$5" || return 1
    # "% N messages (B bytes) consumed in T ms: R msgs/s (M MB/s)"
    CLIENT_OUT="$(grep 'consumed in' "$1" | tail -n 1 \
        | sed -n 's/^% \([0-9]*\) messages ([0-9]* bytes) consumed in [0-9]*ms: \([0-9]*\) msgs\/s (\([0-9.]*\) MB\/s).*/\1 \2 \3/p' \
        | awk -v n="$5" '$1 >= n {printf "%.1f %.0f\n", $3, $2}')"
    [[ -n "$CLIENT_OUT" ]]
}
