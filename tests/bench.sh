#!/usr/bin/env bash
# Builds release, starts a fresh strata on a temporary data dir, runs strata-bench against it,
# and stops the node. Extra arguments go to strata-bench, e.g.:
#   bash tests/bench.sh --total-bytes 2147483648 --in-flight 8
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

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
