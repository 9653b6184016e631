#!/usr/bin/env bash
# Start docker-compose.yml for real and put a study through it, then tear it all down:
#
#   1. images: the project image from docker/Dockerfile (and, where Docker Hub is out of reach, the
#      stand-ins for postgres:16 and python:3.11-slim from a debootstrapped Debian, docker/standins/)
#   2. postgres, the dashboard, a Ray head and one Ray worker (`up -d`)
#   3. a smoke study through `compose run launch` against the containerised PostgreSQL
#   4. the Ray worker container is SIGKILLed mid-study (a crashed node; its restart policy brings it
#      back): the study must still finish every cell, and every trial finished before the kill must
#      still be finished with the same value
#   5. the dashboard serves the study over HTTP; the HTML report is written from a container
#   6. `down -v`: containers, network and volumes go (also on failure or Ctrl-C)
#
# It runs with docker/compose.local.yml (host networking, every listener on 127.0.0.1 on ports
# 27xxx, stand-in images); see that file. Needs a reachable docker daemon and `docker compose` or
# docker-compose >= 1.28; building the stand-ins needs root and debootstrap. On a busy 2-core
# machine: 3-4 minutes with the images built, about 13 minutes from nothing (stand-ins 4, image 5).
#
# Environment:
#   ABLATION_DATA_DIR      benchmark data mounted read-only at /data (default ../shared/data)
#   CHECK_STUDY/SEEDS      study and seeds of the smoke study (layer-weights, 2)
#   CHECK_TIMEOUT          seconds the study may take (default 1200)
#   CHECK_USE_STANDINS     1 (default): build and use the local stand-in images; 0: the real ones
#   LOCAL_TORCH_WHEELS     folder with the CPU torch wheel, served on 127.0.0.1 to the image build
#                          (default /opt/wheels when it holds one; else the PyTorch CPU index)
#   CHECK_KEEP=1           leave the stack running at the end (tear down with the printed command)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"

STUDY="${CHECK_STUDY:-layer-weights}"
SEEDS="${CHECK_SEEDS:-2}"
PRESET=smoke
TIMEOUT="${CHECK_TIMEOUT:-1200}"
USE_STANDINS="${CHECK_USE_STANDINS:-1}"
DATA_DIR="$(cd "${ABLATION_DATA_DIR:-../shared/data}" 2>/dev/null && pwd)" || {
  echo "compose-check: no benchmark data at ${ABLATION_DATA_DIR:-../shared/data}" >&2
  exit 2
}
WHEELS_PORT="${LOCAL_WHEELS_PORT:-27090}"
CHECK_DASHBOARD_PORT="${LOCAL_DASHBOARD_PORT:-27080}"  # not DASHBOARD_PORT: .env sets that
NICE=(nice -n 19)
command -v ionice >/dev/null && NICE+=(ionice -c3)

START=$SECONDS
step() { printf '[%4ds] %s\n' "$((SECONDS - START))" "$*"; }
fail() {
  step "FAIL: $*" >&2
  if [ -f "${WORK:-/nonexistent}/compose.merged.yml" ]; then
    compose ps >&2 || true
    compose logs --no-color --tail 20 >&2 2>/dev/null || true
  fi
  exit 1
}

docker info >/dev/null 2>&1 || fail "no docker daemon reachable (docker info failed)"
if docker compose version >/dev/null 2>&1; then
  COMPOSE_BIN=(docker compose)
elif command -v docker-compose >/dev/null; then
  COMPOSE_BIN=(docker-compose)
else
  fail "neither 'docker compose' nor docker-compose is installed"
fi

WORK="$(mktemp -d /tmp/compose-check.XXXXXX)"
mkdir -p "$WORK/reports" "$WORK/results"
PROJECT="ablation-check-$$"
ENV_FILE="$WORK/env"
# A fresh password per run; everything else as .env.example says.
PASSWORD="check-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
sed -e "s/^POSTGRES_PASSWORD=.*/POSTGRES_PASSWORD=$PASSWORD/" \
  -e "s|^ABLATION_DATA_DIR=.*|ABLATION_DATA_DIR=$DATA_DIR|" \
  -e "s|^ABLATION_REPORTS_DIR=.*|ABLATION_REPORTS_DIR=$WORK/reports|" \
  -e "s|^ABLATION_RESULTS_DIR=.*|ABLATION_RESULTS_DIR=$WORK/results|" \
  -e "s/^STUDY=.*/STUDY=$STUDY/" -e "s/^PRESET=.*/PRESET=$PRESET/" -e "s/^SEEDS=.*/SEEDS=$SEEDS/" \
  .env.example >"$ENV_FILE"
set -a
# shellcheck disable=SC1090
. "$ENV_FILE"
set +a

FILES=(-f "$WORK/compose.merged.yml" --project-directory "$REPO")
compose() { "${COMPOSE_BIN[@]}" --env-file "$ENV_FILE" -p "$PROJECT" "${FILES[@]}" "$@"; }
psql_at() { compose exec -T postgres psql -U "$POSTGRES_USER" -d "$POSTGRES_DB" -At -c "$1"; }

WHEELS_PID=""
LAUNCH_PID=""
cleanup() {
  local rc=$?
  [ -n "$LAUNCH_PID" ] && kill "$LAUNCH_PID" 2>/dev/null || true
  [ -n "$WHEELS_PID" ] && kill "$WHEELS_PID" 2>/dev/null || true
  if [ "${CHECK_KEEP:-0}" = 1 ]; then
    step "left running: ${COMPOSE_BIN[*]} --env-file $ENV_FILE -p $PROJECT ${FILES[*]} --profile launch down -v"
  elif [ -f "$WORK/compose.merged.yml" ]; then
    step "teardown: down -v (containers, network, volumes)"
    compose --profile launch down -v --remove-orphans >"$WORK/down.log" 2>&1 ||
      cat "$WORK/down.log" >&2
    left="$(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT")"
    vols="$(docker volume ls -q --filter "label=com.docker.compose.project=$PROJECT")"
    [ -z "$left$vols" ] || echo "compose-check: left behind: $left $vols" >&2
  fi
  [ "${CHECK_KEEP:-0}" = 1 ] || rm -rf "$WORK"
  step "exit $rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- 1. images -------------------------------------------------------------------------------------
build_standins() {
  local base=local/debian-base:bookworm
  if ! docker image inspect "$base" >/dev/null 2>&1; then
    command -v debootstrap >/dev/null || fail "debootstrap is needed to build $base"
    local suite
    suite="$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")"
    step "debootstrap $suite (minbase) for $base"
    "${NICE[@]}" debootstrap --variant=minbase "$suite" "$WORK/rootfs" \
      "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >"$WORK/debootstrap.log" 2>&1 ||
      fail "debootstrap failed, see $WORK/debootstrap.log"
    rm -f "$WORK"/rootfs/var/cache/apt/archives/*.deb
    tar -C "$WORK/rootfs" -c . | docker import - "$base" >/dev/null
    rm -rf "$WORK/rootfs"
  fi
  local ctx="$WORK/standins"
  cp -r docker/standins "$ctx"
  mkdir -p "$ctx/extra-ca"
  cp /usr/local/share/ca-certificates/*.crt "$ctx/extra-ca/" 2>/dev/null || true
  step "stand-ins: local/python:3.11-slim, local/postgres:16 (from $base)"
  "${NICE[@]}" docker build -q -t local/python:3.11-slim -f "$ctx/python.Dockerfile" "$ctx" \
    >"$WORK/standins.log" 2>&1 || { cat "$WORK/standins.log" >&2; fail "python stand-in"; }
  "${NICE[@]}" docker build -q -t local/postgres:16 -f "$ctx/postgres.Dockerfile" "$ctx" \
    >>"$WORK/standins.log" 2>&1 || { cat "$WORK/standins.log" >&2; fail "postgres stand-in"; }
}

if [ "$USE_STANDINS" = 1 ]; then
  build_standins
else
  export LOCAL_POSTGRES_IMAGE=postgres:16 LOCAL_PYTHON_IMAGE=python:3.11-slim
fi

WHEELS="${LOCAL_TORCH_WHEELS:-/opt/wheels}"
if compgen -G "$WHEELS/torch-*+cpu-*.whl" >/dev/null; then
  "${NICE[@]}" python3 -m http.server --bind 127.0.0.1 "$WHEELS_PORT" --directory "$WHEELS" \
    >"$WORK/wheels.log" 2>&1 &
  WHEELS_PID=$!
  export LOCAL_TORCH_FIND_LINKS="http://127.0.0.1:$WHEELS_PORT/"
else
  export LOCAL_TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
fi
# docker-compose.yml with docker/compose.local.yml on top, resolved once; published ports are then
# dropped: host networking publishes nothing, and docker-compose 1.x refuses the pair while an
# override file cannot remove a list there.
"${COMPOSE_BIN[@]}" --env-file "$ENV_FILE" -f docker-compose.yml -f docker/compose.local.yml \
  config >"$WORK/compose.merged.yml"
python3 - "$WORK/compose.merged.yml" <<'EOF'
import sys

import yaml

path = sys.argv[1]
with open(path) as f:
    config = yaml.safe_load(f)
for service in config["services"].values():
    if service.get("network_mode") == "host":
        service.pop("ports", None)
with open(path, "w") as f:
    yaml.safe_dump(config, f, sort_keys=False)
EOF
step "build the project image (docker/Dockerfile)"
"${NICE[@]}" "${COMPOSE_BIN[@]}" --env-file "$ENV_FILE" -p "$PROJECT" "${FILES[@]}" build \
  dashboard >"$WORK/build.log" 2>&1 || { tail -30 "$WORK/build.log" >&2; fail "image build"; }
[ -n "$WHEELS_PID" ] && kill "$WHEELS_PID" && WHEELS_PID=""
grep -m1 "^torch " "$WORK/build.log" | sed 's/^/    image: /' || true

# --- 2. the stack ----------------------------------------------------------------------------------
step "up -d postgres dashboard ray-head ray-worker"
compose up -d postgres dashboard ray-head ray-worker >"$WORK/up.log" 2>&1 ||
  { cat "$WORK/up.log" >&2; fail "compose up"; }
# A service that exits (a bad command, a crash at start) is restarted by its policy: fail on the
# first restart with its log instead of waiting for a cluster that never comes.
restarted() {
  local id
  for id in $(compose ps -q); do
    if [ "$(docker inspect -f '{{.RestartCount}}' "$id")" != 0 ]; then
      docker logs --tail 15 "$id" 2>&1 | sed "s/^/    $(docker inspect -f '{{.Name}}' "$id")| /" >&2
      return 0
    fi
  done
  return 1
}
for _ in $(seq 120); do
  restarted && fail "a service restarted while the stack came up (log above)"
  if compose exec -T ray-head ray status --address "127.0.0.1:${LOCAL_RAY_PORT:-27379}" \
    2>/dev/null | grep -Eq '/[1-9][0-9.]* CPU'; then
    break
  fi
  sleep 2
done
compose exec -T ray-head ray status --address "127.0.0.1:${LOCAL_RAY_PORT:-27379}" 2>/dev/null |
  grep -Eq '/[1-9][0-9.]* CPU' || fail "the Ray worker never joined the head"
step "Ray cluster up: head (0 CPU) + 1 worker; postgres healthy"

# --- 3. the study, and 4. the worker killed mid-study ---------------------------------------------
NAME="$STUDY.$PRESET.model5"
step "compose run launch: --study $STUDY --preset $PRESET --seeds $SEEDS (study $NAME)"
compose run --rm -T launch >"$WORK/launch.log" 2>&1 &
LAUNCH_PID=$!
trials_sql="select t.number || ' ' || t.state || ' ' || coalesce(v.value::text, '-')
  from trials t join studies s on s.study_id = t.study_id
  left join trial_values v on v.trial_id = t.trial_id and v.objective = 0
  where s.study_name = '$NAME' order by t.number"
before=""
killed=0
deadline=$((SECONDS + TIMEOUT))
while kill -0 "$LAUNCH_PID" 2>/dev/null; do
  [ $SECONDS -lt $deadline ] || fail "the study did not finish in ${TIMEOUT}s"
  if [ $killed = 0 ]; then
    rows="$(psql_at "$trials_sql" 2>/dev/null || true)"
    if grep -Eq ' (COMPLETE|PRUNED) ' <<<"$rows" && grep -q ' RUNNING ' <<<"$rows"; then
      before="$(grep -E ' (COMPLETE|PRUNED) ' <<<"$rows")"
      worker="$(compose ps -q ray-worker)"
      pid="$(docker inspect -f '{{.State.Pid}}' "$worker")"
      step "kill -9 the ray-worker container (pid $pid) with $(grep -c . <<<"$before") trial(s) finished and $(grep -c ' RUNNING ' <<<"$rows") running"
      kill -9 "$pid"
      killed=1
      for _ in $(seq 60); do
        [ "$(docker inspect -f '{{.RestartCount}} {{.State.Running}}' "$worker")" = "1 true" ] && break
        sleep 1
      done
      step "ray-worker back: $(docker inspect -f 'restarts {{.RestartCount}}, running {{.State.Running}}' "$worker")"
    fi
  fi
  sleep 1
done
set +e
wait "$LAUNCH_PID"
launch_rc=$?
set -e
LAUNCH_PID=""
step "launch exited $launch_rc"
sed 's/^/    launch| /' "$WORK/launch.log" | grep -v '^    launch| *$' | tail -25
[ "$launch_rc" = 0 ] || fail "launch exited $launch_rc"
[ $killed = 1 ] || fail "the study ended before a trial finished while another ran: nothing killed"

rows="$(psql_at "$trials_sql")"
sed 's/^/    trial /' <<<"$rows"
while read -r number state value; do
  [ -n "$number" ] || continue
  grep -qx "$number $state $value" <<<"$rows" ||
    fail "trial $number was $state ($value) before the kill, now: $(grep "^$number " <<<"$rows")"
done <<<"$before"
# Every cell (arm x seed) the launcher queued ended: a COMPLETE or PRUNED trial (a pruned cell is
# finished; the median pruner may stop any non-baseline cell of a smoke study).
read -r finished queued < <(compose run --rm -T launch python -c "
import os, optuna
from storage.study_records import read_cell
study = optuna.load_study(study_name='$NAME', storage=os.environ['ABLATION_STORAGE'])
ended = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
print(len({read_cell(t) for t in study.trials if t.state in ended}),
      len({read_cell(t) for t in study.trials}))" 2>/dev/null | tail -1) || true
[ -n "$queued" ] && [ "$finished" = "$queued" ] || fail "${finished:-?} of ${queued:-?} cells finished"
step "study finished: $finished of $queued cells ended (COMPLETE or PRUNED), $(grep -c ' FAIL ' <<<"$rows") trial(s) failed by the kill and re-run; the $(grep -c . <<<"$before") trial(s) finished before the kill kept their values"

# --- 5. dashboard and report -----------------------------------------------------------------------
python3 - "$CHECK_DASHBOARD_PORT" "$NAME" <<'EOF' || fail "the dashboard does not serve the study"
import json, sys, urllib.request
base = f"http://127.0.0.1:{sys.argv[1]}"
with urllib.request.urlopen(f"{base}/api/studies", timeout=30) as response:
    studies = json.load(response)["study_summaries"]
study = next(s for s in studies if s["study_name"] == sys.argv[2])
with urllib.request.urlopen(f"{base}/api/studies/{study['study_id']}", timeout=30) as response:
    trials = json.load(response)["trials"]
with urllib.request.urlopen(f"{base}/dashboard", timeout=30) as response:
    assert response.status == 200
print(f"    dashboard: {sys.argv[2]} with {len(trials)} trials at {base}/dashboard")
EOF
step "dashboard serves the study over HTTP"
compose run --rm -T launch python -m dashboards.report --study "$NAME" \
  --out /reports/compose-check.html >"$WORK/report.log" 2>&1 ||
  { cat "$WORK/report.log" >&2; fail "report"; }
[ -s "$WORK/reports/compose-check.html" ] || fail "no report written to the reports mount"
results="$(find "$WORK/results" -name '*.json' | wc -l)"
[ "$results" -gt 0 ] || fail "no MTEB results in the results mount"
step "report written from a container ($(wc -c <"$WORK/reports/compose-check.html") bytes); $results result files in the results mount"
step "compose check passed"
