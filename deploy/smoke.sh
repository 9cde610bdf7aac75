#!/usr/bin/env bash
# Smoke test of an installed SEAJust node: the compose network of deploy/compose.yaml (Thailand, Viet Nam, a
# secretariat and a relay), run from the `seajust` command on 127.0.0.1, in a temporary directory removed afterwards.
#
#   deploy/smoke.sh                                  uses `seajust` on PATH
#   SEAJUST=/opt/seajust/bin/seajust deploy/smoke.sh
#   SEAJUST="/path/to/python -m node.cli" deploy/smoke.sh   (split on spaces)
#
# Prints `smoke: ok` and exits 0, or names the step that failed, shows the tail of each log and exits non-zero.
# Other variables: PYTHON (for free ports and HTTP calls; default python3), SMOKE_TIMEOUT (seconds per wait; 60),
# SEAJUST_PASSPHRASE (the nodes' passphrase; a random one by default, never printed).
set -euo pipefail

read -r -a SEAJUST_CMD <<<"${SEAJUST:-seajust}"
PYTHON=${PYTHON:-python3}
TIMEOUT=${SMOKE_TIMEOUT:-60}
STEP="start"
PIDS=()
declare -A PROC_NAME STOPPED
WORK=$(mktemp -d "${TMPDIR:-/tmp}/seajust-smoke.XXXXXX")

finish() {
    local status=$?
    trap - EXIT INT TERM
    local pid log
    local running=()
    for pid in "${PIDS[@]}"; do
        [ -n "${STOPPED[$pid]:-}" ] || running+=("$pid")
    done
    for pid in "${running[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${running[@]}"; do
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [ "$status" -ne 0 ]; then
        echo "smoke: FAILED at step: $STEP (exit status $status)" >&2
        for log in "$WORK"/*.log; do
            [ -f "$log" ] || continue
            echo "---- last lines of $(basename "$log")" >&2
            tail -n 25 "$log" >&2
        done
    fi
    rm -rf "$WORK"
    exit "$status"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

step() {
    STEP=$*
    echo "smoke: $STEP"
}

seajust() {  # not for background processes: $! would be a subshell's, and SIGTERM would not reach seajust
    "${SEAJUST_CMD[@]}" "$@"
}

free_port() {
    "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# api METHOD URL [JSON BODY]: the response body on stdout; fails on an HTTP error. The bearer token comes from
# $TOKEN in the environment, never from the command line.
api() {
    TOKEN=${TOKEN:-} "$PYTHON" - "$@" <<'PY'
import os, sys, urllib.error, urllib.request
method, url = sys.argv[1], sys.argv[2]
data = sys.argv[3].encode() if len(sys.argv) > 3 else None
request = urllib.request.Request(url, data=data, method=method)
if os.environ.get("TOKEN"):
    request.add_header("Authorization", "Bearer " + os.environ["TOKEN"])
if data is not None:
    request.add_header("Content-Type", "application/json")
try:
    with urllib.request.urlopen(request, timeout=10) as resp:
        sys.stdout.write(resp.read().decode())
except urllib.error.HTTPError as exc:
    sys.stderr.write(f"{method} {url}: HTTP {exc.code}: {exc.read().decode(errors='replace')[:300]}\n")
    sys.exit(1)
except OSError as exc:
    sys.stderr.write(f"{method} {url}: {exc}\n")
    sys.exit(1)
PY
}

# json_check EXPR: evaluates the Python expression EXPR on the JSON document read from stdin (as `doc`); exit 0 if true.
json_check() {
    "$PYTHON" -c 'import json, sys; doc = json.load(sys.stdin); sys.exit(0 if eval(sys.argv[1]) else 1)' "$1"
}

# wait_for WHAT COMMAND...: retries COMMAND until it succeeds, for at most $TIMEOUT seconds.
wait_for() {
    local what=$1
    shift
    local deadline=$((SECONDS + TIMEOUT))
    until "$@" >/dev/null 2>&1; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "smoke: timed out after ${TIMEOUT}s waiting for $what" >&2
            return 1
        fi
        sleep 0.2
    done
}

healthy() {  # healthy URL: GET /healthz answers 200 (a node says {"status": "ok"}, a relay {"ok": true})
    api GET "$1/healthz" >/dev/null
}

alive() {
    local pid=$1 name=$2
    kill -0 "$pid" 2>/dev/null || {
        echo "smoke: $name exited early" >&2
        return 1
    }
}

contact_on() {  # contact_on URL NAME (token in $TOKEN)
    api GET "$1/api/v1/contacts" | json_check "any(c.get('name') == '$2' for c in doc)"
}

roster_complete() {  # roster_complete URL (token in $TOKEN): the three founding nodes are members
    api GET "$1/api/v1/roster" | json_check 'len(doc.get("members", [])) == 3'
}

relay_round() {  # relay_round URL RELAY (token in $TOKEN): a mail round with the relay completed without error
    api GET "$1/api/v1/sync" | json_check "(doc['relays'].get('$2') or {}).get('last_round') is not None"
}

step "checking the seajust command (${SEAJUST_CMD[*]})"
seajust --help >/dev/null
if [ -z "${SEAJUST_PASSPHRASE:-}" ]; then
    SEAJUST_PASSPHRASE=$("$PYTHON" -c 'import secrets; print(secrets.token_urlsafe(24))')
fi
export SEAJUST_PASSPHRASE

NODES=(thailand vietnam secretariat)
declare -A NAME=([thailand]="Thailand - Office of the Attorney General" [vietnam]="Viet Nam - Supreme People's Procuracy"
    [secretariat]="SEAJust Secretariat (UNODC)")
declare -A COUNTRY=([thailand]=TH [vietnam]=VN [secretariat]=TH)
declare -A ROLE=([thailand]=authority [vietnam]=authority [secretariat]=secretariat)
declare -A PORT URL TOKENS NODE_PID
RELAY_PORT=$(free_port)
RELAY_URL="http://127.0.0.1:$RELAY_PORT"

for node in "${NODES[@]}"; do
    step "initialising $node"
    PORT[$node]=$(free_port)
    URL[$node]="http://127.0.0.1:${PORT[$node]}"
    seajust init "$WORK/$node" --name "${NAME[$node]}" --country "${COUNTRY[$node]}" --role "${ROLE[$node]}" \
        --listen "127.0.0.1:${PORT[$node]}" >"$WORK/$node.id"
    # the relay, as SEAJUST_RELAYS does in the container; a short interval so a round completes during the test
    printf 'relays = ["%s"]\nrelay_interval = 1\n' "$RELAY_URL" >>"$WORK/$node/seajust.toml"
    TOKENS[$node]=$(seajust token create "$WORK/$node" --label smoke)
done

exchange() {  # exchange A B: each trusts the other's card
    seajust peer add "$WORK/$1" "$(seajust card "$WORK/$2")" >/dev/null
    seajust peer add "$WORK/$2" "$(seajust card "$WORK/$1")" >/dev/null
}
step "exchanging cards (secretariat with each authority, Thailand with Viet Nam)"
exchange secretariat thailand
exchange secretariat vietnam
exchange thailand vietnam

step "starting the relay"
"${SEAJUST_CMD[@]}" relay "$WORK/relay" --host 127.0.0.1 --port "$RELAY_PORT" >"$WORK/relay.log" 2>&1 &
RELAY_PID=$!
PIDS+=("$RELAY_PID")
PROC_NAME[$RELAY_PID]=relay
for node in "${NODES[@]}"; do
    step "starting $node"
    "${SEAJUST_CMD[@]}" run "$WORK/$node" >"$WORK/$node.log" 2>&1 &
    PIDS+=("$!")
    PROC_NAME[$!]=$node
    NODE_PID[$node]=$!
done

step "waiting for the relay's /healthz"
wait_for "the relay to answer /healthz" healthy "$RELAY_URL"
alive "$RELAY_PID" relay
for node in "${NODES[@]}"; do
    step "waiting for $node's /healthz"
    wait_for "$node to answer /healthz" healthy "${URL[$node]}"
    alive "${NODE_PID[$node]}" "$node"
done

step "founding the roster through the secretariat's API"
TOKEN=${TOKENS[secretariat]} api POST "${URL[secretariat]}/api/v1/roster/found" '{"network": "SEAJust smoke"}' >/dev/null
for node in thailand vietnam; do
    step "waiting for the roster on $node"
    TOKEN=${TOKENS[$node]} wait_for "the roster to reach $node" roster_complete "${URL[$node]}"
done

CONTACT="Smoke Contact $RANDOM$RANDOM"
step "creating a contact point on Thailand"
TOKEN=${TOKENS[thailand]} api POST "${URL[thailand]}/api/v1/contacts" \
    "{\"name\": \"$CONTACT\", \"expertise\": [\"extradition\"], \"languages\": [\"th\", \"en\"]}" >/dev/null
for node in vietnam secretariat; do
    step "waiting for the contact on $node"
    TOKEN=${TOKENS[$node]} wait_for "the contact to reach $node" contact_on "${URL[$node]}" "$CONTACT"
done

step "waiting for a mail round with the relay"
TOKEN=${TOKENS[thailand]} wait_for "Thailand to complete a round with the relay" relay_round "${URL[thailand]}" \
    "$RELAY_URL"

# One at a time, nodes first: each must exit with status 0 within 30 s of its SIGTERM (as `docker stop` and systemd's
# TimeoutStopSec=30 expect); a process still running then is named, and killed by the exit trap.
stop_cleanly() {  # stop_cleanly PID NAME
    local pid=$1 name=$2 code=0 deadline=$((SECONDS + 30))
    kill -TERM "$pid"
    while kill -0 "$pid" 2>/dev/null; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "smoke: $name (pid $pid) still running 30s after SIGTERM" >&2
            return 1
        fi
        sleep 0.1
    done
    wait "$pid" || code=$?
    STOPPED[$pid]=1
    if [ "$code" -ne 0 ]; then
        echo "smoke: $name (pid $pid) exited with status $code after SIGTERM" >&2
        return 1
    fi
}
for pid in "${PIDS[@]:1}" "$RELAY_PID"; do
    step "stopping ${PROC_NAME[$pid]} (SIGTERM, expecting exit status 0)"
    stop_cleanly "$pid" "${PROC_NAME[$pid]}"
done
PIDS=()

echo "smoke: ok"
