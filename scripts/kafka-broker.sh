#!/usr/bin/env bash
# A throwaway Kafka-protocol broker (tansu) on loopback, for tests, benchmarks and demos.
#
#   scripts/kafka-broker.sh start [--dir DIR] [--storage memory|s3] [--port PORT]
#       Starts a broker on a free loopback port (or PORT) and prints its address
#       (127.0.0.1:PORT) as the only stdout line. State (pids, logs, settings) goes to
#       DIR (default: a new temp dir, printed on stderr); pass it to the other commands.
#   scripts/kafka-broker.sh kill DIR        kill -9 the broker (storage survives with s3)
#   scripts/kafka-broker.sh restart DIR     start the broker again on the same port
#   scripts/kafka-broker.sh stop DIR        stop everything started under DIR
#
# Storage: tansu 0.6 built with `dynostore` offers memory:// (fast; gone when the broker
# dies) and s3://. `--storage s3` runs a local moto S3 server (scripts/s3-server.sh)
# as the object store, so a broker killed with -9 and restarted finds its topics,
# records and committed offsets again — that is what the broker-restart test needs.
# moto keeps its objects in its own memory, so it must outlive the broker: `kill` and
# `restart` only touch tansu.
set -euo pipefail
NAME=kafka-broker
HERE=$(dirname "$0")
# shellcheck source=scripts/services.sh
. "$HERE/services.sh"

tansu_bin() {
    if command -v tansu >/dev/null; then command -v tansu
    elif [ -x "$HOME/.cargo/bin/tansu" ]; then echo "$HOME/.cargo/bin/tansu"
    else die "tansu not found: run scripts/setup.sh --test (cargo install tansu --version 0.6.0 --features dynostore)"
    fi
}

start_broker() {
    # shellcheck disable=SC1091
    . "$DIR/settings"
    local engine=memory://tansu/
    if [ "$STORAGE" = s3 ]; then
        engine=s3://tansu/
        export AWS_ENDPOINT="http://127.0.0.1:$S3_PORT" AWS_ALLOW_HTTP=true \
            AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1
    fi
    "$(tansu_bin)" broker \
        --listener-url "tcp://127.0.0.1:$PORT" \
        --advertised-listener-url "tcp://127.0.0.1:$PORT" \
        --storage-engine "$engine" >>"$DIR/tansu.log" 2>&1 &
    echo $! >"$DIR/tansu.pid"
    wait_port "$PORT" tansu
}

start_s3() {
    bash "$HERE/s3-server.sh" start --dir "$DIR/s3" --port "$S3_PORT" --bucket tansu >/dev/null
}

cmd=${1:-}; shift || true
case "$cmd" in
start)
    DIR="" STORAGE=memory PORT=""
    while [ $# -gt 0 ]; do
        case "$1" in
        --dir) DIR=$2; shift 2 ;;
        --storage) STORAGE=$2; shift 2 ;;
        --port) PORT=$2; shift 2 ;;
        *) die "unknown option $1" ;;
        esac
    done
    case "$STORAGE" in memory|s3) ;; *) die "--storage is memory or s3" ;; esac
    [ -n "$DIR" ] || { DIR=$(mktemp -d -t instabrand-kafka.XXXXXX); echo "kafka-broker: state in $DIR" >&2; }
    mkdir -p "$DIR"
    [ -n "$PORT" ] || PORT=$(free_port)
    S3_PORT=""
    [ "$STORAGE" = s3 ] && S3_PORT=$(free_port)
    printf 'PORT=%s\nSTORAGE=%s\nS3_PORT=%s\n' "$PORT" "$STORAGE" "$S3_PORT" >"$DIR/settings"
    [ "$STORAGE" = s3 ] && start_s3
    start_broker
    echo "127.0.0.1:$PORT"
    ;;
kill)
    DIR=${1:?usage: kill DIR}
    kill_pidfile "$DIR/tansu.pid" KILL
    ;;
restart)
    DIR=${1:?usage: restart DIR}
    kill_pidfile "$DIR/tansu.pid" KILL
    start_broker
    ;;
stop)
    DIR=${1:?usage: stop DIR}
    kill_pidfile "$DIR/tansu.pid"
    if [ -d "$DIR/s3" ]; then bash "$HERE/s3-server.sh" stop "$DIR/s3"; fi
    ;;
*)
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
