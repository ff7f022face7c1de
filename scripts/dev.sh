#!/usr/bin/env bash
# Brings up the whole local stack (PostgreSQL, cacheplane-api, three node agents) and
# shows it doing its job: a STANDARD_HA cache `demo` with two replicas, answering PING.
#
#   bash scripts/dev.sh          # start (or reuse) everything, create `demo`, ping it
#   bash scripts/dev.sh status   # what is running
#   bash scripts/dev.sh stop     # stop agents, their redis-servers, the API, PostgreSQL
#
# State lives in ${CACHEPLANE_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/cacheplane}:
#   pg/             the PostgreSQL cluster (initdb once, reused afterwards)
#   admin-token     the API's admin token (generated once, mode 600)
#   api.log         the API's log; api.pid its pid
#   agents/HOST/    a node agent's data dir (saved config, nodes/ID/ per redis-server);
#                   agents/HOST.log its log, agents/HOST.pid its pid
#   demo-auth       the AUTH string of the `demo` instance (mode 600)
#
# Settings (environment):
#   CACHEPLANE_DEV_PG_PORT  PostgreSQL port (default 54329)
#   CACHEPLANE_DEV_PG_DIR   PostgreSQL directory (default DATA_DIR/pg; as root, when the
#                           postgres user cannot reach DATA_DIR, /var/lib/cacheplane/pg)
#   CACHEPLANE_LISTEN       API listen address (default 127.0.0.1:8080)
#   CACHEPLANE_API_BIN      use this binary instead of building target/release/cacheplane-api
#   CACHEPLANE_AGENT_BIN    likewise for target/release/cacheplane-node-agent
#
# Running it again reuses what is running; the API or an agent is restarted only when its
# binary was rebuilt or the API's address changed. The redis-servers keep no data on
# disk, so `stop` empties the caches; the next start then replaces `demo` (an HA primary
# is never restarted in place) rather than leave it REPAIRING.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib/pg.sh
source "$ROOT/scripts/lib/pg.sh"

DATA_DIR=${CACHEPLANE_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/cacheplane}
PG_PORT=${CACHEPLANE_DEV_PG_PORT:-54329}
DB_NAME=cacheplane
LISTEN=${CACHEPLANE_LISTEN:-127.0.0.1:8080}
TOKEN_FILE=$DATA_DIR/admin-token
API_PID_FILE=$DATA_DIR/api.pid
API_LISTEN_FILE=$DATA_DIR/api.listen
API_LOG=$DATA_DIR/api.log
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
API_BIN=${CACHEPLANE_API_BIN:-$TARGET_DIR/release/cacheplane-api}
AGENT_BIN=${CACHEPLANE_AGENT_BIN:-$TARGET_DIR/release/cacheplane-node-agent}

# One agent per zone of the `local` region; host ids are ZONE-1.
AGENTS_DIR=$DATA_DIR/agents
ZONES=(local-a local-b local-c)

# The demo instance.
DEMO_PROJECT=demo-project
DEMO_REGION=local
DEMO_ID=demo
DEMO_PATH=/v1/projects/$DEMO_PROJECT/locations/$DEMO_REGION/instances/$DEMO_ID
DEMO_BODY='{"tier":"STANDARD_HA","memorySizeGb":1,"replicaCount":2,"readReplicasMode":"READ_REPLICAS_ENABLED","locationId":"local-a","alternativeLocationId":"local-b"}'
DEMO_AUTH_FILE=$DATA_DIR/demo-auth

say() { printf '==> %s\n' "$*" >&2; }
die() {
    printf 'dev.sh: error: %s\n' "$*" >&2
    exit 1
}

# ---------------------------------------------------------------------------------------
# processes we started (pid files)

# alive PID: the process runs (a zombie waiting for its parent to reap it does not).
alive() {
    local stat
    kill -0 "$1" 2>/dev/null || return 1
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    stat=${stat##*) }
    [[ ${stat:0:1} != [ZX] ]]
}

# pid_of FILE PATTERN: prints the pid in FILE if that process is alive and its command
# line contains PATTERN (so a reused pid is not taken for ours).
pid_of() {
    local file=$1 pattern=$2 pid
    [[ -f $file ]] || return 1
    pid=$(<"$file")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    alive "$pid" || return 1
    if [[ -d /proc ]]; then
        tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$pattern" || return 1
    fi
    printf '%s\n' "$pid"
}

# stop_pid NAME PID: SIGTERM, up to 15 s for it to exit, then SIGKILL.
stop_pid() {
    local name=$1 pid=$2 i
    say "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do
        alive "$pid" || return 0
        sleep 0.1
    done
    say "$name did not exit after SIGTERM; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
}

# spawn LOG CMD...: runs CMD in the background, detached from this terminal, appending
# its output to LOG; sets SPAWNED_PID.
spawn() {
    local log=$1
    shift
    local detach=(nohup)
    if command -v setsid >/dev/null 2>&1; then
        detach=(setsid)
    fi
    "${detach[@]}" "$@" >>"$log" 2>&1 </dev/null &
    SPAWNED_PID=$!
}

# ---------------------------------------------------------------------------------------
# PostgreSQL

# Where the cluster lives. As root the cluster belongs to the postgres user, who must be
# able to reach it; $HOME=/root is usually closed to it, so fall back to /var/lib.
resolve_pg_dir() {
    if [[ -n ${CACHEPLANE_DEV_PG_DIR:-} ]]; then
        PG_DIR=$CACHEPLANE_DEV_PG_DIR
        return
    fi
    PG_DIR=$DATA_DIR/pg
    if [[ $(id -u) -eq 0 ]] && ! runuser -u postgres -- test -x "$DATA_DIR" 2>/dev/null; then
        PG_DIR=/var/lib/cacheplane/pg
    fi
}

# Port of the running cluster in PG_DIR (line 4 of postmaster.pid).
running_pg_port() {
    sed -n 4p "$PG_DIR/data/postmaster.pid" 2>/dev/null
}

start_pg() {
    ensure_postgres
    if [[ $PG_DIR != "$DATA_DIR/pg" ]]; then
        say "PostgreSQL directory: $PG_DIR (the postgres user cannot reach $DATA_DIR)"
    fi
    mkdir -p "$(dirname "$PG_DIR")"
    pg_init_cluster "$PG_DIR"
    if pg_cluster_running "$PG_DIR"; then
        local port
        port=$(running_pg_port)
        if [[ -n $port && $port != "$PG_PORT" ]]; then
            say "PostgreSQL already running on port $port (not $PG_PORT); using it"
            PG_PORT=$port
        else
            say "PostgreSQL already running on 127.0.0.1:$PG_PORT"
        fi
    else
        if pg_port_in_use "$PG_PORT"; then
            die "port $PG_PORT is taken by another program; set CACHEPLANE_DEV_PG_PORT"
        fi
        say "starting PostgreSQL on 127.0.0.1:$PG_PORT ($PG_DIR)"
        pg_start_cluster "$PG_DIR" "$PG_PORT" || {
            tail -n 30 "$PG_DIR/postgres.log" >&2 || true
            die "PostgreSQL failed to start (log: $PG_DIR/postgres.log)"
        }
    fi
    local psql=(psql -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres)
    if [[ -z $("${psql[@]}" -Atc "select 1 from pg_database where datname = '$DB_NAME'") ]]; then
        say "creating database $DB_NAME"
        "${psql[@]}" -c "create database $DB_NAME"
    fi
    DATABASE_URL=postgres://postgres@127.0.0.1:$PG_PORT/$DB_NAME
}

stop_pg() {
    PG_BINDIR=$(pg_bindir) || return 0
    export PG_BINDIR
    if [[ -d $PG_DIR/data ]] && pg_cluster_running "$PG_DIR"; then
        say "stopping PostgreSQL ($PG_DIR)"
        pg_stop_cluster "$PG_DIR"
    else
        say "PostgreSQL is not running"
    fi
}

# ---------------------------------------------------------------------------------------
# building

# Builds the binaries not given through CACHEPLANE_API_BIN / CACHEPLANE_AGENT_BIN.
build_bins() {
    local pkgs=() var
    for var in CACHEPLANE_API_BIN CACHEPLANE_AGENT_BIN; do
        if [[ -n ${!var:-} ]]; then
            [[ -x ${!var} ]] || die "$var=${!var} is not executable"
        fi
    done
    [[ -n ${CACHEPLANE_API_BIN:-} ]] || pkgs+=(-p cacheplane-api)
    [[ -n ${CACHEPLANE_AGENT_BIN:-} ]] || pkgs+=(-p cacheplane-node-agent)
    [[ ${#pkgs[@]} -gt 0 ]] || return 0
    say "cargo build --release ${pkgs[*]}"
    (cd "$ROOT" && cargo build --release "${pkgs[@]}") || die "cargo build failed"
}

# ---------------------------------------------------------------------------------------
# the API

api_url() {
    local host=${LISTEN%:*} port=${LISTEN##*:}
    case $host in
    0.0.0.0 | '' | '[::]' | '::') host=127.0.0.1 ;;
    esac
    printf 'http://%s:%s\n' "$host" "$port"
}

# Pid of the API we started, if it is still running.
api_pid() {
    pid_of "$API_PID_FILE" cacheplane-api
}

ensure_token() {
    if [[ ! -s $TOKEN_FILE ]]; then
        say "generating the admin token ($TOKEN_FILE)"
        (
            umask 077
            od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$TOKEN_FILE"
        )
    fi
    chmod 600 "$TOKEN_FILE"
}

stop_api() {
    local pid
    if ! pid=$(api_pid); then
        rm -f "$API_PID_FILE"
        return 1
    fi
    stop_pid cacheplane-api "$pid"
    rm -f "$API_PID_FILE"
}

start_api() {
    local pid url
    url=$(api_url)
    if pid=$(api_pid); then
        if [[ $API_BIN -nt $API_PID_FILE ]]; then
            say "cacheplane-api was rebuilt; restarting it"
            stop_api || true
        elif [[ $(cat "$API_LISTEN_FILE" 2>/dev/null) != "$LISTEN" ]]; then
            say "listen address changed; restarting cacheplane-api"
            stop_api || true
        else
            say "cacheplane-api already running (pid $pid) at $url"
            return 0
        fi
    fi
    local port=${LISTEN##*:}
    if pg_port_in_use "$port"; then
        die "port $port is taken by another program; set CACHEPLANE_LISTEN (e.g. 127.0.0.1:8081)"
    fi
    say "starting cacheplane-api on $LISTEN (log: $API_LOG)"
    # The token goes through the environment, not argv, so `ps` does not show it.
    DATABASE_URL=$DATABASE_URL \
        CACHEPLANE_LISTEN=$LISTEN \
        CACHEPLANE_ADMIN_TOKEN=$(<"$TOKEN_FILE") \
        RUST_LOG=${RUST_LOG:-info} \
        spawn "$API_LOG" "$API_BIN"
    printf '%s\n' "$SPAWNED_PID" >"$API_PID_FILE"
    printf '%s\n' "$LISTEN" >"$API_LISTEN_FILE"
}

wait_ready() {
    local url=$1 i
    for ((i = 0; i < 600; i++)); do
        if curl -fsS -o /dev/null --max-time 2 "$url/readyz" 2>/dev/null; then
            return 0
        fi
        if ! api_pid >/dev/null; then
            tail -n 40 "$API_LOG" >&2 || true
            die "cacheplane-api exited during start-up (log: $API_LOG)"
        fi
        sleep 0.1
    done
    tail -n 40 "$API_LOG" >&2 || true
    die "cacheplane-api not ready after 60 s (log: $API_LOG)"
}

# api METHOD PATH [JSON]: calls the API with the admin token. Sets REPLY_STATUS (the HTTP
# status) and REPLY_BODY; fails only when the API cannot be reached.
api() {
    local method=$1 path=$2 data=${3:-} out
    local args=(-sS --max-time 90 -X "$method" -w '\n%{http_code}' -K -)
    if [[ -n $data ]]; then
        args+=(-H 'Content-Type: application/json' --data "$data")
    fi
    # The header goes through curl's config on stdin so the token stays out of argv.
    out=$(printf 'header = "Authorization: Bearer %s"\n' "$(<"$TOKEN_FILE")" |
        curl "${args[@]}" "$(api_url)$path") || return 1
    REPLY_STATUS=${out##*$'\n'}
    REPLY_BODY=${out%$'\n'*}
}

# api_ok METHOD PATH [JSON]: like api, but dies unless the answer is a 2xx.
api_ok() {
    api "$@" || die "$1 $2: cannot reach the API at $(api_url)"
    if [[ $REPLY_STATUS != 2?? ]]; then
        die "$1 $2 answered $REPLY_STATUS: $(error_of "$REPLY_BODY")"
    fi
}

# error_of JSON: the message of an error body (or the body itself).
error_of() {
    jq -r '(.error // .) | if type == "object" and .status then "\(.status): \(.message)" else tostring end' \
        <<<"$1" 2>/dev/null || printf '%s\n' "$1"
}

# ---------------------------------------------------------------------------------------
# node agents

agent_host() { printf '%s-1\n' "$1"; }

# agent_pid HOST: pid of the agent we started for HOST, if it is still running.
agent_pid() {
    pid_of "$AGENTS_DIR/$1.pid" "--host-id $1 --zone"
}

# start_agent ZONE: starts (or keeps) the agent of ZONE's host.
start_agent() {
    local zone=$1 host pid url
    host=$(agent_host "$zone")
    url=$(api_url)
    local pid_file=$AGENTS_DIR/$host.pid url_file=$AGENTS_DIR/$host.url
    local log=$AGENTS_DIR/$host.log dir=$AGENTS_DIR/$host
    if pid=$(agent_pid "$host"); then
        if [[ $AGENT_BIN -nt $pid_file ]]; then
            say "cacheplane-node-agent was rebuilt; restarting $host"
        elif [[ $(cat "$url_file" 2>/dev/null) != "$url" ]]; then
            say "the API moved to $url; restarting $host"
        else
            say "agent $host already running (pid $pid)"
            return 0
        fi
        stop_pid "agent $host" "$pid"
    fi
    mkdir -p "$dir"
    chmod 700 "$dir"
    say "starting agent $host in $zone (log: $log)"
    # The admin token stands in for a host token; through the environment, not argv.
    CACHEPLANE_AGENT_TOKEN=$(<"$TOKEN_FILE") \
        RUST_LOG=${RUST_LOG:-info} \
        spawn "$log" "$AGENT_BIN" --api-url "$url" --host-id "$host" --zone "$zone" \
        --address 127.0.0.1 --network-mode loopback --data-dir "$dir"
    printf '%s\n' "$SPAWNED_PID" >"$pid_file"
    printf '%s\n' "$url" >"$url_file"
}

start_agents() {
    local zone
    # Heartbeats older than this come from before a restart; wait_hosts_up ignores them.
    AGENTS_SINCE=$(date +%s)
    mkdir -p "$AGENTS_DIR"
    for zone in "${ZONES[@]}"; do
        start_agent "$zone"
    done
}

# Waits until GET /v1/hosts shows every agent's host UP (60 s), with a heartbeat sent
# since start_agents ran, so that the nodes' states are what the agents see now.
wait_hosts_up() {
    local want=${#ZONES[@]} up=0 i zone host names
    names=$(for zone in "${ZONES[@]}"; do printf 'hosts/%s\n' "$(agent_host "$zone")"; done |
        jq -R . | jq -sc .)
    for ((i = 0; i < 120; i++)); do
        for zone in "${ZONES[@]}"; do
            host=$(agent_host "$zone")
            if ! agent_pid "$host" >/dev/null; then
                tail -n 30 "$AGENTS_DIR/$host.log" >&2 || true
                die "agent $host exited (log: $AGENTS_DIR/$host.log)"
            fi
        done
        api_ok GET /v1/hosts
        up=$(jq --argjson names "$names" --argjson since "$AGENTS_SINCE" '
            def epoch: .[0:19] + "Z" | fromdateiso8601; # the API writes UTC times
            [.hosts[] | select(.state == "UP" and (.name as $n | $names | index($n))
                and .lastHeartbeatTime != null and (.lastHeartbeatTime | epoch) > $since)]
            | length' <<<"$REPLY_BODY")
        if [[ $up -eq $want ]]; then
            say "$up hosts UP"
            return 0
        fi
        sleep 0.5
    done
    die "only $up of $want hosts UP after 60 s (logs: $AGENTS_DIR/*.log)"
}

# engine_pids HOST: pids of the redis-servers the agent of HOST runs, from their pid
# files, keeping only live redis-server processes.
engine_pids() {
    local f pid prog
    for f in "$AGENTS_DIR/$1"/nodes/*/redis.pid; do
        [[ -f $f ]] || continue
        pid=$(<"$f")
        [[ $pid =~ ^[0-9]+$ ]] || continue
        # Its process title starts with the program: "redis-server 127.64.0.3:6379".
        prog=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || continue
        prog=${prog%% *}
        if [[ $prog == *redis-server ]]; then
            printf '%s\n' "$pid"
        fi
    done
}

# Stops every agent, then the engines they left running (agents never stop engines on
# exit; stopping the agents first keeps them from restarting an engine).
stop_agents() {
    local zone host pid pids=()
    for zone in "${ZONES[@]}"; do
        host=$(agent_host "$zone")
        if pid=$(agent_pid "$host"); then
            stop_pid "agent $host" "$pid"
        else
            say "agent $host is not running"
        fi
        rm -f "$AGENTS_DIR/$host.pid"
    done
    for zone in "${ZONES[@]}"; do
        host=$(agent_host "$zone")
        mapfile -t pids < <(engine_pids "$host")
        for pid in "${pids[@]}"; do
            stop_pid "redis-server of $host" "$pid"
        done
    done
}

# ---------------------------------------------------------------------------------------
# the demo instance

# wait_op OPERATION: waits (up to 3 min) for a long-running operation; dies if it failed.
wait_op() {
    local op=$1 i
    for ((i = 0; i < 3; i++)); do
        api_ok POST "/v1/$op/wait?timeout=60s"
        if [[ $(jq -r .done <<<"$REPLY_BODY") == true ]]; then
            if [[ $(jq -r '.error != null' <<<"$REPLY_BODY") == true ]]; then
                die "operation $op failed: $(jq -r '"\(.error.status): \(.error.message)"' <<<"$REPLY_BODY")"
            fi
            return 0
        fi
    done
    die "operation $op not done after 3 minutes"
}

create_demo() {
    say "creating instance $DEMO_ID (STANDARD_HA, 1 GB, 2 replicas) in $DEMO_PROJECT/$DEMO_REGION"
    api_ok POST "/v1/projects/$DEMO_PROJECT/locations/$DEMO_REGION/instances?instanceId=$DEMO_ID" "$DEMO_BODY"
    local op
    op=$(jq -r .name <<<"$REPLY_BODY")
    say "waiting for $op"
    wait_op "$op"
}

delete_demo() {
    api_ok DELETE "$DEMO_PATH"
    local op
    op=$(jq -r .name <<<"$REPLY_BODY")
    say "waiting for $op"
    wait_op "$op"
}

# Waits (60 s) for the existing demo instance and all its nodes to be READY. Fails at
# once when it cannot get there by itself: FAILED, or its primary down for 3 s while
# every host is UP (after `stop` the engines are gone, and an HA primary is never
# restarted in place). Node states come from the agents' latest heartbeats.
wait_demo_ready() {
    local i state primary_down stuck=0
    for ((i = 0; i < 60; i++)); do
        api_ok GET "$DEMO_PATH"
        state=$(jq -r .state <<<"$REPLY_BODY")
        if [[ $(jq '.state == "READY" and all(.nodes[]; .state == "READY")' <<<"$REPLY_BODY") == true ]]; then
            return 0
        fi
        [[ $state != FAILED ]] || return 1
        primary_down=$(jq 'any(.nodes[]; .role == "PRIMARY" and .state != "READY" and .state != "CREATING")' <<<"$REPLY_BODY")
        if [[ $primary_down == true && $state != CREATING && $state != FAILING_OVER ]]; then
            stuck=$((stuck + 1))
            ((stuck < 3)) || return 1
        else
            stuck=0
        fi
        sleep 1
    done
    die "instance $DEMO_ID is still $state after 60 s: $(jq -r .statusMessage <<<"$REPLY_BODY")"
}

# Makes sure the demo instance exists and is READY; leaves it in REPLY_BODY.
ensure_demo() {
    api GET "$DEMO_PATH" || die "cannot reach the API at $(api_url)"
    case $REPLY_STATUS in
    404) create_demo ;;
    200)
        if wait_demo_ready; then
            say "instance $DEMO_ID already exists and is READY"
        else
            say "instance $DEMO_ID is $(jq -r '"\(.state): \(.statusMessage)"' <<<"$REPLY_BODY")"
            say "it cannot recover by itself (its caches were stopped); deleting and creating it again"
            delete_demo
            create_demo
        fi
        ;;
    *) die "GET $DEMO_PATH answered $REPLY_STATUS: $(error_of "$REPLY_BODY")" ;;
    esac
    api_ok GET "$DEMO_PATH"
}

# Writes the demo's AUTH string to DEMO_AUTH_FILE (mode 600).
save_demo_auth() {
    local auth
    api_ok GET "$DEMO_PATH/authString"
    auth=$(jq -r .authString <<<"$REPLY_BODY")
    (
        umask 077
        printf '%s\n' "$auth" >"$DEMO_AUTH_FILE"
    )
    chmod 600 "$DEMO_AUTH_FILE"
}

# Prints the instance in $1 for people.
print_instance() {
    local json=$1
    jq -r '
        "Instance \(.name)",
        "  state      \(.state)\(if .statusMessage != "" then " (\(.statusMessage))" else "" end)",
        "  tier       \(.tier), \(.memorySizeGb) GB, \(.replicaCount) replicas, \(.redisVersion)",
        "  endpoint   \(.host):\(.port)",
        (if .readEndpoint then "  reads      \(.readEndpoint):\(.readEndpointPort)" else empty end),
        "  nodes      ZONE      ROLE      STATE     ADDRESS",
        (.nodes[] | "             \(.zone | . + " " * (9 - length)) \(.role | . + " " * (9 - length)) \(.state | . + " " * (9 - length)) \(.address):\(.port)")
    ' <<<"$json"
}

# The redis-cli line for the demo, as shown to the user and as run here.
ping_demo() {
    local json=$1 host port
    host=$(jq -r .host <<<"$json")
    port=$(jq -r .port <<<"$json")
    # shellcheck disable=SC2016 # the $(cat ...) is shown to the user, not run
    printf '\n$ REDISCLI_AUTH=$(cat %q) redis-cli -h %s -p %s ping\n' "$DEMO_AUTH_FILE" "$host" "$port"
    # The AUTH string goes through the environment, not argv.
    REDISCLI_AUTH=$(<"$DEMO_AUTH_FILE") redis-cli -h "$host" -p "$port" ping ||
        die "redis-cli could not reach $host:$port"
}

# ---------------------------------------------------------------------------------------
# commands

cmd_start() {
    ensure_pkg curl curl
    ensure_pkg jq jq
    ensure_pkg redis-server redis-server
    ensure_pkg redis-cli redis-tools
    start_pg
    ensure_token
    build_bins
    start_api
    local url
    url=$(api_url)
    wait_ready "$url"
    start_agents
    wait_hosts_up
    ensure_demo
    local instance=$REPLY_BODY
    save_demo_auth
    echo
    print_instance "$instance"
    ping_demo "$instance"
    cat <<EOF

Cacheplane is up.
  API          $url   (log: $API_LOG)
  admin token  $TOKEN_FILE
  agents       $(for z in "${ZONES[@]}"; do printf '%s ' "$(agent_host "$z")"; done)  (logs: $AGENTS_DIR/*.log)
  PostgreSQL   $DATABASE_URL   (data: $PG_DIR)

  curl -H "Authorization: Bearer \$(cat $TOKEN_FILE)" $url/v1/hosts
  bash scripts/dev.sh status   # what runs
  bash scripts/dev.sh stop     # stop agents, caches, the API and PostgreSQL
EOF
}

cmd_stop() {
    stop_agents
    stop_api || say "cacheplane-api is not running"
    stop_pg
}

cmd_status() {
    local pid zone host pids
    if PG_BINDIR=$(pg_bindir) && [[ -d $PG_DIR/data ]] && pg_cluster_running "$PG_DIR"; then
        echo "PostgreSQL: running on 127.0.0.1:$(running_pg_port) ($PG_DIR)"
    else
        echo "PostgreSQL: not running ($PG_DIR)"
    fi
    if pid=$(api_pid); then
        echo "cacheplane-api: running (pid $pid) at $(api_url); log $API_LOG"
    else
        echo "cacheplane-api: not running"
    fi
    for zone in "${ZONES[@]}"; do
        host=$(agent_host "$zone")
        if pid=$(agent_pid "$host"); then
            printf 'agent %s (%s): running (pid %s); log %s\n' "$host" "$zone" "$pid" "$AGENTS_DIR/$host.log"
        else
            printf 'agent %s (%s): not running\n' "$host" "$zone"
        fi
        pids=$(engine_pids "$host" | paste -sd ' ' -)
        printf '  redis-servers: %s\n' "${pids:-none}"
    done
    if ! [[ -s $TOKEN_FILE ]] || ! api_pid >/dev/null || ! api GET "$DEMO_PATH" 2>/dev/null; then
        echo "instance $DEMO_ID: unknown (the API is not running)"
    elif [[ $REPLY_STATUS == 200 ]]; then
        jq -r '"instance \(.name | sub(".*/"; "")): \(.state) at \(.host):\(.port)" +
            " (" + ([.nodes[] | "\(.zone) \(.role) \(.state)"] | join(", ")) + ")"' <<<"$REPLY_BODY"
    else
        echo "instance $DEMO_ID: none ($(error_of "$REPLY_BODY"))"
    fi
}

make_data_dir() {
    mkdir -p "$DATA_DIR"
    # As root the postgres user must be able to pass through to DATA_DIR/pg; the files
    # that matter (admin-token, demo-auth) are mode 600 themselves.
    if [[ $(id -u) -eq 0 ]]; then
        chmod 711 "$DATA_DIR"
    else
        chmod 700 "$DATA_DIR"
    fi
}

case ${1:-start} in
start | up) make_data_dir ;;
esac
resolve_pg_dir
case ${1:-start} in
start | up) cmd_start ;;
stop | down) cmd_stop ;;
status) cmd_status ;;
-h | --help | help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" ;;
*) die "unknown command '$1' (start, stop, status)" ;;
esac
