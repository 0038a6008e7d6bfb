#!/usr/bin/env bash
# Start one peer broker (rabbitmq | activemq) in the background from the
# private directory laid out by setup.sh, bound to 127.0.0.1 only. Writes the
# broker's own OS PID (beam.smp / java) to $DIR/<name>.pid, waits until its
# STOMP port answers CONNECT with CONNECTED, then prints one line:
#   <name> pid=<pid> stomp=127.0.0.1:<port> version=<version>
# Each start begins with an empty message store unless FERRYMQ_PEERS_KEEP_DATA=1.
set -euo pipefail

DIR="${FERRYMQ_PEERS_DIR:-/tmp/ferrymq-peers}"
WAIT="${FERRYMQ_PEERS_WAIT:-90}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

RABBIT_STOMP=61623 RABBIT_AMQP=5682 RABBIT_EPMD=4379 RABBIT_DIST=25682
AMQ_STOMP=61624 AMQ_OPENWIRE=61626

usage() { echo "usage: $0 rabbitmq|activemq" >&2; exit 2; }
[[ $# -eq 1 ]] || usage
NAME="$1"
case "$NAME" in rabbitmq|activemq) ;; *) usage ;; esac

if [[ ! -d $DIR ]] || ! command -v epmd >/dev/null || [[ ! -f /usr/share/activemq/bin/activemq.jar ]]; then
    echo "start.sh: run $HERE/setup.sh first" >&2
    exit 1
fi

PIDFILE="$DIR/$NAME.pid"

alive() { [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null; }

# stomp_probe PORT [LOGIN PASSCODE VHOST]: CONNECT, expect CONNECTED; prints
# the server header (e.g. RabbitMQ/3.10.8). Exit 0 only on CONNECTED.
stomp_probe() {
    python3 - "$@" <<'PY'
import socket, sys
port = int(sys.argv[1])
hdr = ["CONNECT", "accept-version:1.0,1.1,1.2", "heart-beat:0,0"]
if len(sys.argv) == 5:
    login, passcode, vhost = sys.argv[2:5]
    hdr += ["host:%s" % vhost, "login:%s" % login, "passcode:%s" % passcode]
else:
    hdr += ["host:127.0.0.1"]
try:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(("\n".join(hdr) + "\n\n\0").encode())
    buf = b""
    while b"\0" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            break
        buf += chunk
    s.sendall(b"DISCONNECT\n\n\0")
    s.close()
except OSError:
    sys.exit(1)
lines = buf.split(b"\0")[0].decode(errors="replace").split("\n")
while lines and lines[0] == "":
    lines.pop(0)
if not lines or lines[0] != "CONNECTED":
    sys.stderr.write("probe: %r\n" % buf[:300])
    sys.exit(3)
server = dict(l.split(":", 1) for l in lines[1:] if ":" in l).get("server", "unknown")
print(server)
PY
}

# wait_ready PID PORT LOG [LOGIN PASSCODE VHOST] -> prints server header
wait_ready() {
    local pid=$1 port=$2 log=$3
    shift 3
    local deadline=$((SECONDS + WAIT)) server
    while ((SECONDS < deadline)); do
        if ! alive "$pid"; then
            echo "start.sh: $NAME (pid $pid) exited during start-up; log tail ($log):" >&2
            tail -n 40 "$log" >&2 || true
            rm -f "$PIDFILE"
            return 1
        fi
        if server=$(stomp_probe "$port" "$@" 2>/dev/null); then
            echo "$server"
            return 0
        fi
        sleep 0.5
    done
    echo "start.sh: $NAME (pid $pid) not answering STOMP on 127.0.0.1:$port after ${WAIT}s; log tail ($log):" >&2
    tail -n 40 "$log" >&2 || true
    echo "start.sh: stopping what was started" >&2
    "$HERE/stop.sh" "$NAME" >&2 || true
    return 1
}

report() { # pid port server
    echo "$NAME pid=$1 stomp=127.0.0.1:$2 version=${3#*/}"
}

start_rabbitmq() {
    local base="$DIR/rabbitmq" log pid wrapper server
    log="$base/log/startup.log"
    mkdir -p "$base/log"
    [[ -f $log ]] && mv -f "$log" "$log.prev"
    [[ ${FERRYMQ_PEERS_KEEP_DATA:-0} == 1 ]] || rm -rf "$base/mnesia"
    mkdir -p "$base/mnesia"
    cat >"$base/rabbitmq.conf" <<CONF
# ferrymq bench peer: default settings, loopback-only listeners.
listeners.tcp.1 = 127.0.0.1:$RABBIT_AMQP
stomp.listeners.tcp.1 = 127.0.0.1:$RABBIT_STOMP
CONF
    echo '[rabbitmq_stomp].' >"$base/enabled_plugins"
    : >"$base/rabbitmq-env.conf"   # keep /etc/rabbitmq/rabbitmq-env.conf out
    [[ -f $base/advanced.config ]] || echo '[].' >"$base/advanced.config"
    rm -f "$base/beam.pid"

    export HOME="$base"   # holds the private .erlang.cookie
    export ERL_EPMD_ADDRESS=127.0.0.1 ERL_EPMD_PORT=$RABBIT_EPMD
    export RABBITMQ_NODENAME=ferrymq-peer@localhost
    export RABBITMQ_CONF_ENV_FILE="$base/rabbitmq-env.conf"
    export RABBITMQ_CONFIG_FILE="$base/rabbitmq.conf"
    export RABBITMQ_ADVANCED_CONFIG_FILE="$base/advanced.config"
    export RABBITMQ_ENABLED_PLUGINS_FILE="$base/enabled_plugins"
    export RABBITMQ_MNESIA_BASE="$base/mnesia"
    export RABBITMQ_LOG_BASE="$base/log"
    export RABBITMQ_PID_FILE="$base/beam.pid"
    export RABBITMQ_DIST_PORT=$RABBIT_DIST
    export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-start_epmd false -kernel inet_dist_use_interface {127,0,0,1}"

    # Our own epmd, loopback only, on a private port, stopped by PID later.
    local epmd_pid=""
    [[ -f $DIR/epmd.pid ]] && epmd_pid=$(<"$DIR/epmd.pid")
    if ! alive "$epmd_pid"; then
        setsid epmd -address 127.0.0.1 -port "$RABBIT_EPMD" </dev/null >>"$base/log/epmd.log" 2>&1 &
        epmd_pid=$!
        echo "$epmd_pid" >"$DIR/epmd.pid"
        for _ in $(seq 50); do
            epmd -port "$RABBIT_EPMD" -names >/dev/null 2>&1 && break
            alive "$epmd_pid" || { echo "start.sh: epmd failed:" >&2; tail -n 5 "$base/log/epmd.log" >&2; exit 1; }
            sleep 0.1
        done
    fi

    cd "$base"
    setsid /usr/lib/rabbitmq/bin/rabbitmq-server </dev/null >>"$log" 2>&1 &
    wrapper=$!
    echo "$wrapper" >"$DIR/rabbitmq.wrapper.pid"
    # The wrapper shell runs erl in the background; the node writes its own
    # OS PID (beam.smp) to RABBITMQ_PID_FILE early in boot.
    pid=""
    for _ in $(seq $((WAIT * 10))); do
        [[ -s $base/beam.pid ]] && pid=$(tr -dc '0-9' <"$base/beam.pid") && [[ -n $pid ]] && break
        alive "$wrapper" || break
        sleep 0.1
    done
    if [[ -z $pid ]]; then
        echo "start.sh: rabbitmq wrote no PID; log tail ($log):" >&2
        tail -n 40 "$log" >&2 || true
        "$HERE/stop.sh" rabbitmq >&2 || true
        exit 1
    fi
    echo "$pid" >"$PIDFILE"
    server=$(wait_ready "$pid" "$RABBIT_STOMP" "$log" guest guest /) || exit 1
    report "$pid" "$RABBIT_STOMP" "$server"
}

start_activemq() {
    local base="$DIR/activemq" log pid server
    log="$base/activemq.out"
    mkdir -p "$base/conf" "$base/tmp"
    [[ -f $log ]] && mv -f "$log" "$log.prev"
    [[ ${FERRYMQ_PEERS_KEEP_DATA:-0} == 1 ]] || rm -rf "$base/data"
    mkdir -p "$base/data"
    # Debian's stock instance config, with only the two loopback connectors.
    local stock=/etc/activemq/instances-available/main
    cp "$stock/log4j2.properties" "$base/conf/log4j2.properties"
    python3 - "$stock/activemq.xml" "$base/conf/activemq.xml" "$AMQ_OPENWIRE" "$AMQ_STOMP" <<'PY'
import re, sys
src, dst, openwire, stomp = sys.argv[1:5]
xml = open(src).read()
connectors = (
    '<transportConnectors>\n'
    '            <transportConnector name="openwire" uri="tcp://127.0.0.1:%s"/>\n'
    '            <transportConnector name="stomp+nio" uri="stomp+nio://127.0.0.1:%s?transport.tcpNoDelay=true"/>\n'
    '        </transportConnectors>' % (openwire, stomp))
xml, n = re.subn(r"<transportConnectors>.*?</transportConnectors>", connectors, xml, flags=re.S)
if n != 1:
    sys.exit("activemq.xml: expected one <transportConnectors> block, found %d" % n)
if re.search(r"jetty|<import ", xml, re.I):
    sys.exit("activemq.xml: stock config now pulls in Jetty/imports; review it")
open(dst, "w").write(xml)
PY

    # Same JVM options as Debian's /usr/share/activemq/activemq-options and
    # the module flags /usr/bin/activemq passes on Java > 8.
    local ACTIVEMQ_OPTS
    # shellcheck disable=SC1091,SC2034
    ACTIVEMQ_OPTS=$(set +eu; INSTANCE=main; . /usr/share/activemq/activemq-options >/dev/null 2>&1; echo "${ACTIVEMQ_OPTS:-}")
    [[ -n $ACTIVEMQ_OPTS ]] || ACTIVEMQ_OPTS="-Xms512M -Xmx512M -Dorg.apache.activemq.UseDedicatedTaskRunner=true"
    local -a opts
    read -r -a opts <<<"$ACTIVEMQ_OPTS"
    cd "$base"
    setsid java "${opts[@]}" \
        --add-reads=java.xml=java.logging \
        --add-opens java.base/java.security=ALL-UNNAMED \
        --add-opens java.base/java.net=ALL-UNNAMED \
        --add-opens java.base/java.lang=ALL-UNNAMED \
        --add-opens java.base/java.util=ALL-UNNAMED \
        --add-opens java.naming/javax.naming.spi=ALL-UNNAMED \
        --add-opens java.rmi/sun.rmi.transport.tcp=ALL-UNNAMED \
        --add-opens java.base/java.util.concurrent=ALL-UNNAMED \
        --add-opens java.base/java.util.concurrent.atomic=ALL-UNNAMED \
        --add-exports=java.base/sun.net.www.protocol.http=ALL-UNNAMED \
        --add-exports=java.base/sun.net.www.protocol.https=ALL-UNNAMED \
        --add-exports=java.base/sun.net.www.protocol.jar=ALL-UNNAMED \
        --add-exports=jdk.xml.dom/org.w3c.dom.html=ALL-UNNAMED \
        --add-exports=jdk.naming.rmi/com.sun.jndi.url.rmi=ALL-UNNAMED \
        -Djava.io.tmpdir="$base/tmp" \
        -Dactivemq.classpath="$base/conf:" \
        -Dactivemq.home=/usr/share/activemq \
        -Dactivemq.base="$base" \
        -Dactivemq.conf="$base/conf" \
        -Dactivemq.data="$base/data" \
        -jar /usr/share/activemq/bin/activemq.jar start "xbean:file:$base/conf/activemq.xml" \
        </dev/null >>"$log" 2>&1 &
    pid=$!
    echo "$pid" >"$PIDFILE"
    server=$(wait_ready "$pid" "$AMQ_STOMP" "$log") || exit 1
    report "$pid" "$AMQ_STOMP" "$server"
}

# Already running? Report it and succeed (idempotent).
if [[ -f $PIDFILE ]]; then
    old=$(<"$PIDFILE")
    if alive "$old"; then
        if [[ $NAME == rabbitmq ]]; then
            port=$RABBIT_STOMP; creds=(guest guest /)
        else
            port=$AMQ_STOMP; creds=()
        fi
        if ! server=$(stomp_probe "$port" "${creds[@]}"); then
            echo "start.sh: $NAME pid $old is alive but STOMP 127.0.0.1:$port does not answer" >&2
            exit 1
        fi
        report "$old" "$port" "$server"
        exit 0
    fi
    rm -f "$PIDFILE"
fi

# Refuse to start if someone else already holds one of our ports (the
# readiness probe would otherwise talk to that other process).
if [[ $NAME == rabbitmq ]]; then ports=("$RABBIT_STOMP" "$RABBIT_AMQP" "$RABBIT_DIST"); else ports=("$AMQ_STOMP" "$AMQ_OPENWIRE"); fi
for port in "${ports[@]}"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "start.sh: 127.0.0.1:$port is already in use by another process (see: ss -ltnp)" >&2
        exit 1
    fi
done

"start_$NAME"
