#!/usr/bin/env bash
# Sweeps a range of seeds on every core and prints the failing seeds with their replay commands.
#
#   bash sim/sweep.sh cluster 40000 10000        # cluster seeds 40000..49999
#   bash sim/sweep.sh single 90000 5000          # single-node seeds 90000..94999
#   JOBS=4 CHUNK=50 bash sim/sweep.sh cluster 0 500
#
# Builds the sweep test once, then runs chunks of CHUNK seeds (default 100) as separate processes
# of the test binary, JOBS at a time (default: the number of cores), each with
# STRATA_SIM_SEED_BASE / STRATA_SIM_(CLUSTER_)SEEDS set to its chunk. Every chunk's output is kept
# under target/sweeps/<kind>-<base>-<count>/, with the copy of the test binary the chunks run (so
# a rebuild during a long sweep changes nothing); the exit status is 1 if any seed failed.
#
# Pick a base nobody ran before when reviewing a change (DEVELOPERS.md keeps the list of bases
# already used): the default sweep's seeds 0..500 are the ones the code was tuned against.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

kind=${1:?usage: sim/sweep.sh cluster|single BASE COUNT}
base=${2:?usage: sim/sweep.sh cluster|single BASE COUNT}
count=${3:?usage: sim/sweep.sh cluster|single BASE COUNT}
jobs=${JOBS:-$(nproc)}
chunk=${CHUNK:-100}
# A chunk still running after this long has a seed whose simulation never ends: it is killed and
# reported (its log ends with "seed N: started" for the hung seed).
chunk_timeout=${CHUNK_TIMEOUT:-1800}
case "$kind" in
    cluster) test=sweep_cluster; fn=random_cluster_sweep; count_var=STRATA_SIM_CLUSTER_SEEDS ;;
    single) test=sweep; fn=random_sweep; count_var=STRATA_SIM_SEEDS ;;
    *) echo "kind must be cluster or single, not $kind" >&2; exit 2 ;;
esac

bin=$(cargo sim --release --test "$test" --no-run --message-format=json 2>/dev/null \
    | python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == sys.argv[1]:
        print(m["executable"])' "$test" | tail -1)
if [ -z "$bin" ]; then
    echo "could not build the $test test (run: cargo sim --release --test $test --no-run)" >&2
    exit 2
fi

out=target/sweeps/$kind-$base-$count
rm -rf "$out"
mkdir -p "$out"
# The sweep runs its own copy of the binary, so a rebuild while it runs changes nothing.
cp "$bin" "$out/$test.bin"
bin=$PWD/$out/$test.bin
echo "sweep $kind seeds $base..$((base + count - 1)) on $jobs jobs, chunks of $chunk; logs in $out"
start=$(date +%s)

chunks=()
for ((b = base; b < base + count; b += chunk)); do
    n=$((base + count - b < chunk ? base + count - b : chunk))
    chunks+=("$b $n")
done
printf '%s\n' "${chunks[@]}" | xargs -P "$jobs" -L 1 bash -c '
    b=$0; n=$1
    if env -u MADSIM_TEST_SEED STRATA_SIM_SEED_BASE=$b '"$count_var"'=$n timeout '"$chunk_timeout"' "'"$bin"'" --exact '"$fn"' --nocapture --test-threads=1 >"'"$out"'/$b.log" 2>&1; then
        echo "  seeds $b..$((b + n - 1)): ok"
    else
        echo "  seeds $b..$((b + n - 1)): FAILURES (see '"$out"'/$b.log)"
    fi
' || true

secs=$(( $(date +%s) - start ))
failed=$(grep -hoE '(^|[^0-9])seed [0-9]+ (FAILED|PANICKED)' "$out"/*.log | grep -oE '[0-9]+' | sort -n | uniq || true)
# A chunk that died without its summary line (killed, or the harness itself broke) is a
# failure too.
broken=$(grep -LE "$test: [0-9]+ seeds in" "$out"/*.log || true)
echo "sweep $kind $base..$((base + count - 1)): $count seeds in ${secs}s"
if [ -n "$broken" ]; then
    echo "chunks that did not finish (the last seed started in each hung or crashed):"
    for f in $broken; do echo "  $f: $(grep -oE 'seed [0-9]+: started' "$f" | tail -1)"; done
fi
if [ -z "$failed" ] && [ -z "$broken" ]; then
    echo "all seeds passed"
    exit 0
fi
echo "failing seeds:"
for s in $failed; do
    echo "  $s   replay: MADSIM_TEST_SEED=$s cargo sim --release --test $test -- --nocapture"
done
exit 1
