#!/usr/bin/env bash
# Plants each bug of the catalogue in turn and shows whether the simulator catches it.
#
#   bash sim/mutants/run.sh                          # every sim/mutants/NN-*.patch
#   bash sim/mutants/run.sh 07 16-dedup-window-of-one   # by number or name
#   SEEDS=100 SEED_BASE=5000 bash sim/mutants/run.sh 04
#
# For each patch: `git apply` it to this work tree (reverted afterwards, also on failure or
# Ctrl-C), build the simulator's test binaries it needs (`cargo sim --release --no-run --test ..`),
# then try the targets named on its `Target:` header line in order — `single` (the single-node sweep), `cluster` (the cluster
# sweep), `scenario:<test>` (one test of sim/tests/scenarios.rs) — until one fails. A sweep runs
# at most SEEDS seeds (default 300) from SEED_BASE (default 0) and stops at the first failing
# seed (STRATA_SIM_STOP_AT_FIRST=1). Prints one table row per patch: caught or not, by what (the
# anomalies the checkers found, the liveness failure, or the assertion that fired) and after
# how many seeds. Logs: target/mutants/<patch>/<target>.log. Exits 1 if any planted bug survived
# or a patch no longer applies or builds.
#
# The patches are cut against `main`; one that no longer applies says so (re-cut it with
# sim/mutants/make.py, which holds every patch as a text replacement). One mutant at a time: the
# build and the seeds use every core.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
root=$PWD
seeds=${SEEDS:-300}
base=${SEED_BASE:-0}
step_timeout=${STEP_TIMEOUT:-1800}

patches=()
if [ $# -eq 0 ]; then
    for p in sim/mutants/[0-9]*.patch; do patches+=("$p"); done
else
    for a in "$@"; do
        m=(sim/mutants/"$a"*.patch)
        if [ ! -e "${m[0]}" ]; then echo "no patch sim/mutants/$a*.patch" >&2; exit 2; fi
        patches+=("${m[@]}")
    done
fi

applied=""
revert() {
    if [ -n "$applied" ]; then
        if git -C "$root" apply -R "$applied"; then
            echo "reverted $(basename "$applied")" >&2
        else
            echo "!!! could not revert $applied: the work tree still holds the planted bug" >&2
        fi
        applied=""
    fi
}
trap revert EXIT
trap 'revert; exit 130' INT TERM

# The executable of test target $1 from cargo's JSON messages on stdin.
executable() {
    python3 -c 'import json,sys
for line in sys.stdin:
    try: m = json.loads(line)
    except ValueError: continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == sys.argv[1]:
        print(m["executable"])' "$1" | tail -1
}

# What caught the bug, from a failing run's log: the assertion that fired, the first anomaly the
# checkers named, or the liveness failure.
caught_by() {
    local log=$1 what
    what=$(grep -m1 -oE 'seed [0-9]+ PANICKED .*\): .*' "$log" | sed -E 's/^.*\): //' | cut -c1-70)
    if [ -n "$what" ]; then echo "assertion: $what"; return; fi
    what=$(grep -m1 -oE 'history INVALID: .*' "$log" | sed 's/history INVALID: //')
    if [ -n "$what" ]; then echo "$what"; return; fi
    if grep -qE '^liveness: Err' "$log"; then
        echo "liveness: $(grep -m1 -oE '^liveness: Err.*' "$log" | sed 's/^liveness: Err(//' | cut -c1-60)"
        return
    fi
    # A scenario's assertion: where it fired and the first line of its message.
    where=$(grep -m1 -oE 'panicked at [^ ]+' "$log" | sed 's/panicked at //; s/:$//')
    what=$(grep -m1 -A1 'panicked at' "$log" | tail -1 | cut -c1-70)
    echo "assertion at ${where:-?}: ${what:-see log}"
}

rows=()
survivors=0
for patch in "${patches[@]}"; do
    name=$(basename "$patch" .patch)
    targets=$(sed -n 's/^Target: //p' "$patch" | head -1)
    targets=${targets:-single cluster}
    out=target/mutants/$name
    rm -rf "$out"; mkdir -p "$out"
    echo "=== $name: $(sed -n 's/^Planted bug: //p' "$patch" | head -1)" >&2
    if ! git apply --check "$patch" 2>"$out/apply.log"; then
        echo "$name no longer applies to this tree:" >&2; cat "$out/apply.log" >&2
        rows+=("| $name | DOES NOT APPLY | re-cut with sim/mutants/make.py | - |")
        survivors=$((survivors + 1))
        continue
    fi
    git apply "$patch" && applied=$root/$patch
    # Only the test binaries the targets need: each is a long release link.
    build_tests=()
    for t in $targets; do
        case "$t" in
            single) build_tests+=(--test sweep) ;;
            cluster) build_tests+=(--test sweep_cluster) ;;
            scenario:*) build_tests+=(--test scenarios) ;;
        esac
    done
    if ! cargo sim --release --no-run "${build_tests[@]}" --message-format=json >"$out/build.json" 2>"$out/build.log"; then
        echo "$name does not build (see $out/build.log)" >&2
        rows+=("| $name | DOES NOT BUILD | see $out/build.log | - |")
        survivors=$((survivors + 1))
        revert
        continue
    fi
    result="| $name | no | - | survived: $targets, $seeds seeds each from $base |"
    for t in $targets; do
        case "$t" in
            single) test=sweep; fn=random_sweep; var=STRATA_SIM_SEEDS ;;
            cluster) test=sweep_cluster; fn=random_cluster_sweep; var=STRATA_SIM_CLUSTER_SEEDS ;;
            scenario:*) test=scenarios; fn=${t#scenario:}; var=UNUSED ;;
            *) echo "unknown target $t in $patch" >&2; continue ;;
        esac
        bin=$(executable "$test" <"$out/build.json")
        log=$out/${t//:/-}.log
        echo "  $t ..." >&2
        start=$(date +%s)
        timeout "$step_timeout" env -u MADSIM_TEST_SEED STRATA_SIM_STOP_AT_FIRST=1 \
            STRATA_SIM_SEED_BASE="$base" "$var=$seeds" \
            "$bin" --exact "$fn" --nocapture --test-threads=1 >"$log" 2>&1
        rc=$?
        secs=$(( $(date +%s) - start ))
        if [ $rc -eq 0 ]; then
            echo "  $t: survived ($secs s)" >&2
            continue
        fi
        if [ $rc -eq 124 ]; then
            echo "  $t: timed out after $secs s (see $log)" >&2
            result="| $name | no | $t timed out after ${secs}s | - |"
            continue
        fi
        by=$(caught_by "$log")
        case "$t" in
            scenario:*) n="scenario \`$fn\`" ;;
            *)
                seed=$(grep -m1 -oE 'seed [0-9]+ (FAILED|PANICKED)' "$log" | awk '{print $2}')
                if [ -n "$seed" ]; then n="$((seed - base + 1)) ($t seed $seed)"; else n="? ($t)"; fi
                ;;
        esac
        echo "  $t: CAUGHT by $by after $n ($secs s)" >&2
        result="| $name | yes | $by | $n |"
        break
    done
    case "$result" in "| $name | yes |"*) ;; *) survivors=$((survivors + 1)) ;; esac
    rows+=("$result")
    echo "$result"
    revert
done

echo
echo "| planted bug | caught | by | after seeds |"
echo "|---|---|---|---|"
printf '%s\n' "${rows[@]}"
[ "$survivors" -eq 0 ]
