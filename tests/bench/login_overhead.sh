#!/usr/bin/env bash
# Wall time of `jit-ssh login` excluding the wait for the human: key
# generation, CA round trips, agent add — from the client's own --json
# timings. Release binaries, `serve --dev` on loopback, a private
# ssh-agent, and headless Chromium (tests/browser/approve.mjs) as the
# person touching the key. Prints a table.
#
#   cargo build --release -p jit-ssh -p jit-ssh-ca && bash tests/bench/login_overhead.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-10}
bin=target/release
work=$(mktemp -d)
ca_pid= agent_pid=
cleanup() {
    [ -n "$ca_pid" ] && kill -TERM "$ca_pid" 2>/dev/null || true
    [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

user=$(id -un)
"$bin/jit-ssh-ca" serve --dev --dev-dir "$work/dev" --dev-user "$user" --listen 127.0.0.1:0 >"$work/ca.out" 2>"$work/ca.err" &
ca_pid=$!
for _ in $(seq 100); do grep -q '^enroll ' "$work/ca.out" && break; sleep 0.1; done
url=$(sed -n 's/^jit-ssh-ca listening on //p' "$work/ca.out")
enroll=$(sed -n "s/^enroll $user: //p" "$work/ca.out")
node tests/browser/approve.mjs enroll "$enroll" "$work/cred.json" >/dev/null

ssh-agent -D -a "$work/agent.sock" >/dev/null 2>&1 &
agent_pid=$!
for _ in $(seq 100); do [ -S "$work/agent.sock" ] && break; sleep 0.05; done
printf '#!/bin/sh\nexec node %s approve "$1" %s >/dev/null 2>&1\n' "$PWD/tests/browser/approve.mjs" "$work/cred.json" >"$work/browser"
chmod 755 "$work/browser"

: >"$work/timings"
for i in $(seq "$runs"); do
    JIT_SSH_CA_URL=$url JIT_SSH_USER=$user JIT_SSH_CONFIG=/nonexistent SSH_AUTH_SOCK=$work/agent.sock BROWSER=$work/browser \
        "$bin/jit-ssh" --json login "db-$i.dev" --as "$user" --ttl 10m --timeout 60s >>"$work/timings" 2>>"$work/client.err"
done

python3 - "$work/timings" <<'PY'
import json, sys, statistics as st
rows = [json.loads(l)["timings"] for l in open(sys.argv[1]) if l.strip()]
def line(name, key):
    v = sorted(r[key] for r in rows)
    print(f"| {name:<38} | {st.median(v):8.1f} | {v[-1]:8.1f} |")
print(f"| jit-ssh login, {len(rows)} runs (release, loopback) | p50 ms   | max ms   |")
print("|----------------------------------------|----------|----------|")
line("key generation", "keygen_ms")
line("create request (HTTP)", "create_request_ms")
line("agent: remove old + add key and cert", "agent_ms")
line("total excluding the human wait", "overhead_ms")
line("(the wait: browser start + touch)", "wait_ms")
PY
