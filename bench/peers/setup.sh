#!/usr/bin/env bash
# Install the two peer brokers (Debian's rabbitmq-server 3.10 and activemq
# 5.17) without leaving any system service running, and lay out the private
# directory that start.sh runs them from. Idempotent; run as root.
set -euo pipefail

DIR="${FERRYMQ_PEERS_DIR:-/tmp/ferrymq-peers}"
PKGS=(rabbitmq-server activemq)

if [[ $(id -u) -ne 0 ]]; then
    echo "setup.sh: must run as root" >&2
    exit 1
fi

# PIDs of broker-like processes (beam.smp, epmd, java running activemq).
broker_pids() {
    local p cmd
    for p in /proc/[0-9]*; do
        cmd=$(tr '\0' ' ' 2>/dev/null <"$p/cmdline") || continue
        case "$cmd" in
            *beam.smp*|*/epmd*|epmd*|*activemq.jar*) echo "${p#/proc/}" ;;
        esac
    done
}

missing=()
for pkg in "${PKGS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$pkg")
    fi
done

if ((${#missing[@]})); then
    before=" $(broker_pids | tr '\n' ' ') "
    # Forbid maintainer scripts to start services while installing: a
    # policy-rc.d that answers 101 ("action forbidden"). Keep any existing one.
    policy=/usr/sbin/policy-rc.d
    backup=""
    if [[ -e $policy ]]; then
        backup=$(mktemp /tmp/policy-rc.d.XXXXXX)
        cp -p "$policy" "$backup"
    fi
    restore_policy() {
        if [[ -n $backup ]]; then
            cp -p "$backup" "$policy" && rm -f "$backup"
        else
            rm -f "$policy"
        fi
    }
    trap restore_policy EXIT
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"

    echo "setup.sh: installing ${missing[*]}"
    if ! apt-get install -y --no-install-recommends "${missing[@]}"; then
        apt-get update
        apt-get install -y --no-install-recommends "${missing[@]}"
    fi
    restore_policy
    trap - EXIT

    # Belt and braces: stop anything the install itself left running.
    for pid in $(broker_pids); do
        if [[ $before != *" $pid "* ]]; then
            echo "setup.sh: stopping pid $pid started by the install: $(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" || true)"
            kill "$pid" 2>/dev/null || true
        fi
    done
fi

# The system services stay unused: we never start them. Lay out the private dir.
mkdir -p "$DIR"/rabbitmq "$DIR"/activemq
echo "setup.sh: rabbitmq-server $(dpkg-query -W -f='${Version}' rabbitmq-server)," \
    "activemq $(dpkg-query -W -f='${Version}' activemq), private dir $DIR"
