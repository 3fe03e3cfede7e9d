#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need when it is
# missing (redis-server; Kannel's bearerbox, smsbox and fakesmsc; prometheus and promtool),
# starts Redis on loopback, runs formatting, lint, the import check and every test, and
# stops what it started. The Kannel tests start their own Kannel
# (tests/integration/support/kannel.rs), the metrics tests their own Prometheus: own
# config, free loopback ports.
# Usage: scripts/test.sh [extra cargo test arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }

# Debian's kannel-extras puts fakesmsc here, off PATH.
fakesmsc_debian=/usr/lib/kannel/test/fakesmsc

# A Kannel box on PATH or in /usr/sbin (where Debian puts them; not on every user's PATH).
have_box() { command -v "$1" >/dev/null || [ -x "/usr/sbin/$1" ]; }

install_missing() {
    local missing=()
    command -v redis-server >/dev/null || missing+=(redis-server)
    command -v redis-cli >/dev/null || missing+=(redis-tools)
    { have_box bearerbox && have_box smsbox; } || missing+=(kannel)
    command -v fakesmsc >/dev/null || [ -x "$fakesmsc_debian" ] || missing+=(kannel-extras)
    # promtool and the Prometheus server the metrics tests start (tests/integration/metrics.rs).
    { command -v promtool >/dev/null && command -v prometheus >/dev/null; } || missing+=(prometheus)
    if ((${#missing[@]})); then
        log "installing ${missing[*]}"
        local sudo=()
        [ "$(id -u)" = 0 ] || sudo=(sudo)
        "${sudo[@]}" apt-get update -qq
        # Installing kannel may start Debian's own Kannel service (/etc/kannel/kannel.conf,
        # admin port 13000), and prometheus its own server (port 9090), where services may
        # start; the tests neither use nor collide with them.
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

workdir=$(mktemp -d)
redis_pid=""
cleanup() {
    if [ -n "$redis_pid" ] && kill -0 "$redis_pid" 2>/dev/null; then
        kill "$redis_pid" && wait "$redis_pid" 2>/dev/null || true
    fi
    rm -rf "$workdir"
}
trap cleanup EXIT

install_missing

# The Kannel tests take fakesmsc from this variable (else PATH, else the Debian path);
# they fail, never skip, when it is missing.
if [ -z "${TAMTAM_TEST_FAKESMSC:-}" ]; then
    TAMTAM_TEST_FAKESMSC=$(command -v fakesmsc || echo "$fakesmsc_debian")
fi
if [ ! -x "$TAMTAM_TEST_FAKESMSC" ]; then
    echo "fakesmsc not found at $TAMTAM_TEST_FAKESMSC (Debian package kannel-extras)" >&2
    exit 1
fi
export TAMTAM_TEST_FAKESMSC

# The metrics tests take promtool and prometheus from these variables (else PATH); they
# fail, never skip, when either is missing.
PROMTOOL=${PROMTOOL:-$(command -v promtool || true)}
TAMTAM_TEST_PROMETHEUS=${TAMTAM_TEST_PROMETHEUS:-$(command -v prometheus || true)}
if [ ! -x "$PROMTOOL" ] || [ ! -x "$TAMTAM_TEST_PROMETHEUS" ]; then
    echo "promtool or prometheus not found (Debian package prometheus)" >&2
    exit 1
fi
export PROMTOOL TAMTAM_TEST_PROMETHEUS
echo "Prometheus: $TAMTAM_TEST_PROMETHEUS, promtool $PROMTOOL"
echo "Kannel: $(command -v bearerbox || echo /usr/sbin/bearerbox), fakesmsc $TAMTAM_TEST_FAKESMSC"

log "starting redis-server on loopback"
port=$(free_port)
redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no \
    --dir "$workdir" --logfile "$workdir/redis.log" --daemonize no &
redis_pid=$!
# Wait for Redis to say it is ready (bounded: 20 s), reading its log rather than guessing.
if ! timeout 20 bash -c "until grep -q 'Ready to accept connections' '$workdir/redis.log' 2>/dev/null; do
        kill -0 $redis_pid 2>/dev/null || exit 1; sleep 0.05; done"; then
    echo "redis-server did not start:" >&2
    cat "$workdir/redis.log" >&2 || true
    exit 1
fi
export TAMTAM_TEST_REDIS_URL="redis://127.0.0.1:$port"
echo "redis-server pid $redis_pid on $TAMTAM_TEST_REDIS_URL"

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy"
cargo clippy --all-targets --locked -- -D warnings

log "imports: no cycle, no upward import (ARCHITECTURE.md)"
python3 scripts/check-imports.py

log "tamtam check (shipped configuration and menus)"
cargo run --quiet --locked -- check

log "cargo test"
cargo test --locked "$@"
