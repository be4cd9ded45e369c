#!/usr/bin/env bash
# Builds librdkafka's C benchmark client, rdkafka_performance, once and caches it under
# target/bench-tools/rdkafka/. Prints the binary's path on stdout (the last line); what it did
# goes to stderr, and target/bench-tools/rdkafka/LINKED says which librdkafka it runs with.
#
#   bash tests/bench/rdkafka.sh          # build if missing or stale; print the path
#   BENCH_RDKAFKA=debian bash tests/bench/rdkafka.sh   # link Debian's librdkafka instead
#
# The source is the rdkafka_performance.c that Debian's librdkafka-dev ships under
# /usr/share/doc/librdkafka-dev/examples/ (plain or .gz). It includes librdkafka's private
# rd.h/rdtime.h, which no package ships; tests/bench/rdkafka-compat/src/ stands in for them.
# It is compiled against Debian's public rdkafka.h and linked against the librdkafka that the
# confluent-kafka wheel bundles (confluent_kafka.libs/librdkafka-*.so.1, copied next to the
# binary, found through rpath $ORIGIN). librdkafka keeps its C ABI backward compatible, so a
# program built with older headers runs on a newer library; if the wheel's library is older
# than the headers, missing, or the result does not run, it falls back to Debian's own
# librdkafka (-lrdkafka) and LINKED says why.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

OUT=target/bench-tools/rdkafka
COMPAT=tests/bench/rdkafka-compat/src
EXAMPLES=/usr/share/doc/librdkafka-dev/examples
HEADER=/usr/include/librdkafka/rdkafka.h

say() { echo "rdkafka.sh: $*" >&2; }

pip_install() {
    # Debian's system python refuses plain pip installs (PEP 668); pyenv's does not.
    python3 -m pip install -q "$@" >&2 || python3 -m pip install -q --break-system-packages "$@" >&2
}

if [[ ! -f "$HEADER" ]] || ! ls "$EXAMPLES"/rdkafka_performance.c* >/dev/null 2>&1; then
    say "installing librdkafka-dev (Debian) for rdkafka_performance.c and rdkafka.h"
    apt-get update -qq >&2
    apt-get install -y -qq librdkafka-dev >&2
fi
if ! python3 -c "import confluent_kafka" >/dev/null 2>&1; then
    say "installing confluent-kafka (its wheel bundles librdkafka)"
    pip_install confluent-kafka
fi

mkdir -p "$OUT"
SRC="$OUT/rdkafka_performance.c"
if [[ -f "$EXAMPLES/rdkafka_performance.c" ]]; then
    cp "$EXAMPLES/rdkafka_performance.c" "$SRC.new"
else
    gzip -dc "$EXAMPLES/rdkafka_performance.c.gz" >"$SRC.new"
fi
mv "$SRC.new" "$SRC"

WHEEL_LIB="$(python3 - <<'EOF'
import glob, os
import confluent_kafka
site = os.path.dirname(os.path.dirname(confluent_kafka.__file__))
libs = sorted(glob.glob(os.path.join(site, "confluent_kafka.libs", "librdkafka*.so*")))
print(libs[0] if libs else "")
EOF
)"
WHEEL_VERSION="$(python3 -c 'import confluent_kafka; print(confluent_kafka.libversion()[0])')"
WHEEL_HEX="$(python3 -c 'import confluent_kafka; print(confluent_kafka.libversion()[1])')"
PY_VERSION="$(python3 -c 'import confluent_kafka; print(confluent_kafka.__version__)')"
HEADER_HEX="$(awk '/#define RD_KAFKA_VERSION /{print $3}' "$HEADER")"
DEBIAN_VERSION="$(dpkg-query -W -f '${Version}' librdkafka-dev 2>/dev/null || echo unknown)"

# Rebuild when the source, the stand-in headers, rdkafka.h, the wheel's library or gcc change.
STAMP="$( {
    echo "${BENCH_RDKAFKA:-}"
    cat "$SRC" "$COMPAT"/*.h "$HEADER"
    [[ -z "$WHEEL_LIB" ]] || cat "$WHEEL_LIB"
    gcc --version
} | sha256sum | cut -d' ' -f1)"
if [[ -x "$OUT/rdkafka_performance" && -f "$OUT/LINKED" ]] \
    && [[ "$(cat "$OUT/stamp" 2>/dev/null)" == "$STAMP" ]]; then
    say "cached: $(cat "$OUT/LINKED")"
    echo "$OUT/rdkafka_performance"
    exit 0
fi

compile() { # extra gcc arguments...
    gcc -O2 -Wall -o "$OUT/rdkafka_performance" -I"$COMPAT" -I"$(dirname "$HEADER")" "$SRC" "$@" \
        -lpthread >&2
}

runs() { # prints the version the binary reports (its usage text names it)
    "$OUT/rdkafka_performance" 2>&1 | grep -o 'librdkafka version [^ ]*' | cut -d' ' -f3 || true
}

linked=""
why=""
if [[ "${BENCH_RDKAFKA:-}" == debian ]]; then
    why="BENCH_RDKAFKA=debian"
elif [[ -z "$WHEEL_LIB" ]]; then
    why="the confluent-kafka wheel has no bundled librdkafka"
elif (( WHEEL_HEX < HEADER_HEX )); then
    why="the wheel's librdkafka $WHEEL_VERSION is older than Debian's headers ($DEBIAN_VERSION)"
else
    rm -f "$OUT"/librdkafka*.so*
    cp "$WHEEL_LIB" "$OUT/"
    lib="$(basename "$WHEEL_LIB")"
    # shellcheck disable=SC2016 # $ORIGIN is for the dynamic linker, not the shell
    if compile -L"$OUT" -l:"$lib" -Wl,-rpath,'$ORIGIN' && [[ "$(runs)" == "$WHEEL_VERSION" ]]; then
        linked="librdkafka $WHEEL_VERSION from the confluent-kafka $PY_VERSION wheel ($lib)"
        linked+=", built against Debian's librdkafka-dev $DEBIAN_VERSION headers"
    else
        why="linking the wheel's $lib failed or the result did not run"
    fi
fi
if [[ -z "$linked" ]]; then
    say "falling back to Debian's librdkafka: $why"
    rm -f "$OUT"/librdkafka*.so*
    compile -lrdkafka
    linked="Debian's librdkafka $(runs) (librdkafka-dev $DEBIAN_VERSION; fallback: $why)"
fi
echo "$linked" >"$OUT/LINKED"
echo "$STAMP" >"$OUT/stamp"
say "built $OUT/rdkafka_performance: $linked"
echo "$OUT/rdkafka_performance"
