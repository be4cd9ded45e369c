#!/usr/bin/env bash
# The one test command: installs the third-party clients a fresh machine lacks, builds every
# binary in release, and runs the whole workspace's tests (unit, end-to-end) in release, then the
# deterministic simulation.
#
#   bash tests/run-all.sh            # from any directory
#   STRATA_BIN=/path/to/strata bash tests/run-all.sh   # test another build of the broker
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

echo "== tools =="
if ! command -v kcat >/dev/null 2>&1; then
    echo "installing kcat"
    apt-get update -qq
    apt-get install -y -qq kcat
fi
# jepsen/ (as root): network namespaces need `ip` (iproute2), partitions and packet loss
# `iptables`, clock faults libfaketime.
if ! command -v iptables >/dev/null 2>&1 || ! command -v ip >/dev/null 2>&1 \
    || ! ls /usr/lib/*/faketime/libfaketimeMT.so.1 >/dev/null 2>&1; then
    echo "installing iproute2, iptables and libfaketime (jepsen/)"
    apt-get update -qq
    apt-get install -y -qq iproute2 iptables faketime libfaketime
fi
if ! python3 -c "import confluent_kafka, kafka, aiokafka" >/dev/null 2>&1; then
    echo "installing confluent-kafka, kafka-python and aiokafka"
    # Debian's system python refuses plain pip installs (PEP 668); pyenv's does not.
    python3 -m pip install -q confluent-kafka kafka-python aiokafka \
        || python3 -m pip install -q --break-system-packages confluent-kafka kafka-python aiokafka
fi
if ! command -v npm >/dev/null 2>&1; then
    echo "installing node and npm"
    apt-get update -qq
    apt-get install -y -qq nodejs npm
fi
if [ ! -d tests/js/node_modules/kafkajs ]; then
    echo "installing kafkajs (tests/js/package.json)"
    (cd tests/js && npm install --no-audit --no-fund)
fi
kcat -V 2>&1 | head -1
python3 -c "import confluent_kafka, kafka, aiokafka; print('confluent-kafka', confluent_kafka.__version__, 'librdkafka', confluent_kafka.libversion()[0], 'kafka-python', kafka.__version__, 'aiokafka', aiokafka.__version__)"
node -e "console.log('node', process.version, 'kafkajs', require('./tests/js/node_modules/kafkajs/package.json').version)"

echo "== build =="
cargo build --release --workspace --bins

echo "== test =="
cargo test --release --workspace --no-fail-fast

echo "== simulation =="
# The real node under madsim: named scenarios, a determinism check and a sweep of 300 seeds
# (STRATA_SIM_SEEDS to change; MADSIM_TEST_SEED=<n> replays one seed).
cargo sim --release --no-fail-fast
