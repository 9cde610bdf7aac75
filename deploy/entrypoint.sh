#!/bin/sh
# Entry point of the SEAJust container image (deploy/Dockerfile). POSIX sh.
#
#   entrypoint.sh [run [ARGS...]]   the node: initialised on first start from SEAJUST_* variables, then run
#   entrypoint.sh relay [ARGS...]   a relay (holds no keys, needs no passphrase)
#   entrypoint.sh COMMAND...        anything else is run as is (e.g. `seajust card /data/node`)
#
# Variables (the defaults are the container's paths; tests point them elsewhere):
#   SEAJUST_DATA             the volume                                   default /data
#   SEAJUST_PASSPHRASE_FILE  the node's passphrase (a Docker secret)      default /run/secrets/seajust_passphrase
#   SEAJUST_LISTEN           where the node listens (first start only)    default 0.0.0.0:8470
#   SEAJUST_NAME, SEAJUST_COUNTRY, SEAJUST_ROLE, SEAJUST_URL
#                            the node's card, read on first start only (`seajust init`); SEAJUST_URL is the
#                            address peers dial, required when listening on 0.0.0.0
#   SEAJUST_RELAYS           relay URLs, comma or space separated; written to seajust.toml once, if the file does
#                            not set `relays` yet (edit the file afterwards, not the variable)
#   SEAJUST_RELAY_HOST, SEAJUST_RELAY_PORT  where a relay listens          default 0.0.0.0, 9500
#   SEAJUST                  the seajust command                          default seajust
# The passphrase is never printed, and never passed on a command line: only the file's path is.
set -eu
umask 077

SEAJUST=${SEAJUST:-seajust}
DATA=${SEAJUST_DATA:-/data}
HOME_DIR="$DATA/node"
PASSFILE=${SEAJUST_PASSPHRASE_FILE:-/run/secrets/seajust_passphrase}
LISTEN=${SEAJUST_LISTEN:-0.0.0.0:8470}

fail() {
    printf 'seajust-entrypoint: %s\n' "$*" >&2
    exit 1
}

say() {
    printf 'seajust-entrypoint: %s\n' "$*"
}

has_node() {
    [ -f "$HOME_DIR/seajust.toml" ] && [ -f "$HOME_DIR/keys.json" ]
}

init_node() {
    if [ -z "${SEAJUST_NAME:-}" ] || [ -z "${SEAJUST_COUNTRY:-}" ]; then
        fail "no node in $HOME_DIR yet: set SEAJUST_NAME and SEAJUST_COUNTRY (and SEAJUST_URL) to create one," \
            "or run \`seajust init $HOME_DIR ...\` in the container"
    fi
    say "creating the node in $HOME_DIR ($SEAJUST_NAME, $SEAJUST_COUNTRY)"
    set -- init "$HOME_DIR" --passphrase-file "$PASSFILE" --name "$SEAJUST_NAME" --country "$SEAJUST_COUNTRY" \
        --role "${SEAJUST_ROLE:-authority}" --listen "$LISTEN"
    if [ -n "${SEAJUST_URL:-}" ]; then
        set -- "$@" --url "$SEAJUST_URL"
    fi
    node_id=$("$SEAJUST" "$@") || fail "seajust init failed (see the error above)"
    say "node ID $node_id: compare it with your counterparts by phone before they add this node's card"
}

# `relays = [...]` from SEAJUST_RELAYS, under [node], unless the file already says which relays to use.
set_relays() {
    config="$HOME_DIR/seajust.toml"
    if grep -Eq '^[[:space:]]*relays[[:space:]]*=' "$config"; then
        return 0
    fi
    list=""
    set -f  # no globbing while splitting the list
    old_ifs=$IFS
    IFS=', '
    for relay in $SEAJUST_RELAYS; do
        case "$relay" in
            http://?* | https://?*) ;;
            *) fail "SEAJUST_RELAYS: $relay is not an http(s) URL" ;;
        esac
        case "$relay" in
            *[\"\\\'\`\$]* | *[[:cntrl:]]*) fail "SEAJUST_RELAYS: $relay has characters a URL does not need" ;;
        esac
        list="${list:+$list, }\"$relay\""
    done
    IFS=$old_ifs
    set +f
    [ -n "$list" ] || return 0
    grep -q '^\[node\][[:space:]]*$' "$config" || fail "$config has no [node] table"
    tmp="$config.tmp.$$"
    awk -v line="relays = [$list]" '{ print } /^\[node\][[:space:]]*$/ && !done { print line; done = 1 }' \
        "$config" >"$tmp" || { rm -f "$tmp"; fail "cannot write $config"; }
    mv "$tmp" "$config"
    say "relays set in $config: [$list]"
}

run_node() {
    [ -f "$PASSFILE" ] ||
        fail "no passphrase file at $PASSFILE: mount the Docker secret seajust_passphrase (or set SEAJUST_PASSPHRASE_FILE)"
    [ -r "$PASSFILE" ] || fail "$PASSFILE is not readable by uid $(id -u): give the secret file to that user"
    mkdir -p "$DATA"
    if ! has_node; then
        init_node
    fi
    if [ -n "${SEAJUST_RELAYS:-}" ]; then
        set_relays
    fi
    exec "$SEAJUST" run "$HOME_DIR" --passphrase-file "$PASSFILE" "$@"
}

mode=${1:-run}
if [ "$#" -gt 0 ]; then
    shift
fi
case "$mode" in
    run) run_node "$@" ;;
    relay)
        exec "$SEAJUST" relay "$DATA/relay" --host "${SEAJUST_RELAY_HOST:-0.0.0.0}" \
            --port "${SEAJUST_RELAY_PORT:-9500}" "$@"
        ;;
    *) exec "$mode" "$@" ;;
esac
