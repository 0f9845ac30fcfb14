# Helpers for the scripts that start throwaway services on loopback for tests,
# benchmarks and demos (kafka-broker.sh, s3-server.sh). Source it; it defines
# functions only. Callers set NAME (for messages) and DIR (where logs go).

die() { echo "${NAME:-services}: $*" >&2; exit 1; }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Waits until something accepts TCP connections on 127.0.0.1:$1.
wait_port() {
    local port=$1 what=$2
    for _ in $(seq 1 100); do
        if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$port),0.2)" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    die "$what did not start listening on 127.0.0.1:$port (see logs in $DIR)"
}

# Stops the process whose pid is in file $1 (signal $2, default TERM; -9 after 5 s).
kill_pidfile() {
    local f=$1 sig=${2:-TERM}
    [ -f "$f" ] || return 0
    local pid
    pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null; then
        kill "-$sig" "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$f"
}
