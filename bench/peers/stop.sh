#!/usr/bin/env bash
# Stop peer brokers started by start.sh, by PID file only: SIGTERM, wait
# (bounded), then SIGKILL. For RabbitMQ also its wrapper shell and the private
# epmd. Removes the PID files. Idempotent: stopping a stopped broker is fine.
set -euo pipefail

DIR="${FERRYMQ_PEERS_DIR:-/tmp/ferrymq-peers}"
GRACE="${FERRYMQ_PEERS_STOP_WAIT:-30}"

usage() { echo "usage: $0 rabbitmq|activemq|all" >&2; exit 2; }
[[ $# -eq 1 ]] || usage
case "$1" in
    rabbitmq|activemq) targets=("$1") ;;
    all) targets=(rabbitmq activemq) ;;
    *) usage ;;
esac

# stop_pidfile FILE PATTERN LABEL: kill the PID in FILE if it is alive and its
# command line matches PATTERN (so a recycled PID is never hit).
stop_pidfile() {
    local file=$1 pattern=$2 label=$3 pid cmd
    [[ -f $file ]] || return 0
    pid=$(tr -dc '0-9' <"$file")
    rm -f "$file"
    [[ -n $pid ]] || return 0
    cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || cmd=""
    if [[ -z $cmd ]]; then   # gone, or a zombie that has already exited
        echo "$label: pid $pid already exited"
        return 0
    fi
    if [[ $cmd != *$pattern* ]]; then
        echo "$label: pid $pid is no longer ours ($cmd); left alone"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + GRACE))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "$label: pid $pid ignored SIGTERM for ${GRACE}s; SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    fi
    echo "$label: stopped pid $pid"
}

for name in "${targets[@]}"; do
    case "$name" in
        rabbitmq)
            if [[ ! -f $DIR/rabbitmq.pid && ! -f $DIR/rabbitmq.wrapper.pid && ! -f $DIR/epmd.pid ]]; then
                echo "rabbitmq: not running"
                continue
            fi
            stop_pidfile "$DIR/rabbitmq.pid" beam.smp rabbitmq
            stop_pidfile "$DIR/rabbitmq.wrapper.pid" rabbitmq-server rabbitmq-wrapper
            stop_pidfile "$DIR/epmd.pid" epmd epmd
            ;;
        activemq)
            if [[ ! -f $DIR/activemq.pid ]]; then
                echo "activemq: not running"
                continue
            fi
            stop_pidfile "$DIR/activemq.pid" activemq.jar activemq
            ;;
    esac
done
