#!/usr/bin/env bash
# A throwaway S3-compatible server (moto's, from PyPI `moto[server]`) on loopback, for
# tests and demos: the tansu broker's storage in the Kafka tests, and the archive's
# object store in the archive tests.
#
#   scripts/s3-server.sh start [--dir DIR] [--port PORT] [--bucket NAME]...
#       Starts the server on a free loopback port (or PORT), creates the buckets, and
#       prints its endpoint (http://127.0.0.1:PORT) as the only stdout line. State
#       (pid, log, settings) goes to DIR (default: a new temp dir, printed on stderr).
#   scripts/s3-server.sh stop DIR       stop it
#   scripts/s3-server.sh restart DIR    stop it and start it again on the same port
#       with the same (empty) buckets: an outage, as clients see it
#
# moto keeps objects in its own memory: they are gone once it stops. Any access key
# and secret are accepted (AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test).
set -euo pipefail
NAME=s3-server
# shellcheck source=scripts/services.sh
. "$(dirname "$0")/services.sh"

start_moto() {
    # shellcheck disable=SC1091
    . "$DIR/settings"
    python3 -c 'import moto.server' 2>/dev/null || die "moto not found: pip install 'moto[server]' (scripts/setup.sh --test)"
    python3 -m moto.server -H 127.0.0.1 -p "$PORT" >>"$DIR/moto.log" 2>&1 &
    echo $! >"$DIR/moto.pid"
    wait_port "$PORT" "moto's S3 server"
    # shellcheck disable=SC2086
    if ! python3 - "$PORT" $BUCKETS <<'PY'
import sys, urllib.error, urllib.request
port, *buckets = sys.argv[1:]
for b in buckets:
    try:
        urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/{b}", method="PUT")).read()
    except urllib.error.HTTPError as e:
        sys.exit(f"creating bucket {b!r}: {e} {e.read()[:300]!r}")
PY
    then
        kill_pidfile "$DIR/moto.pid"
        die "could not create the buckets$BUCKETS"
    fi
}

cmd=${1:-}; shift || true
case "$cmd" in
start)
    DIR="" PORT="" BUCKETS=""
    while [ $# -gt 0 ]; do
        case "$1" in
        --dir) DIR=$2; shift 2 ;;
        --port) PORT=$2; shift 2 ;;
        --bucket) BUCKETS="$BUCKETS $2"; shift 2 ;;
        *) die "unknown option $1" ;;
        esac
    done
    [ -n "$DIR" ] || { DIR=$(mktemp -d -t instabrand-s3.XXXXXX); echo "s3-server: state in $DIR" >&2; }
    mkdir -p "$DIR"
    [ -n "$PORT" ] || PORT=$(free_port)
    printf 'PORT=%s\nBUCKETS="%s"\n' "$PORT" "$BUCKETS" >"$DIR/settings"
    start_moto
    echo "http://127.0.0.1:$PORT"
    ;;
stop)
    DIR=${1:?usage: stop DIR}
    kill_pidfile "$DIR/moto.pid"
    ;;
restart)
    DIR=${1:?usage: restart DIR}
    kill_pidfile "$DIR/moto.pid"
    start_moto
    ;;
*)
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
