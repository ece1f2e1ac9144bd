#!/usr/bin/env bash
# gen-auth.sh KIND:ID [KIND:ID ...] < auth.conf > rendered.conf
#
# Renders SDP's NATS auth.conf with one user per agent: for each KIND:ID,
# a permission block AGENT_<ID> and a user `agent-<ID>` whose password is
# $NATS_PW_AGENT_<ID> (ID upper-cased, `-` as `_`). The agent may publish
# only its own heartbeat (`agent.heartbeat.KIND.ID`), its runtime-log
# batches (`agent.logs.ID.*.data`), progress (`deploy.progress.*`, which
# names no agent) and replies; it may subscribe only to its kind's requests
# and its own `agent.cmd.ID.>` and log credits. Everything between the
# `# BEGIN AGENTS` / `# END AGENTS` and `# BEGIN AGENT USERS` /
# `# END AGENT USERS` markers of the input is replaced; the rest is kept.
# `install.sh --nats-agent KIND:ID` runs this; the shipped auth.conf is its
# output for `micro:micro-1 gateway:gateway-1` (a test checks).
set -euo pipefail

if [ $# -eq 0 ]; then
  echo "usage: $0 KIND:ID [KIND:ID ...] < auth.conf > rendered.conf" >&2
  exit 2
fi

blocks=$(mktemp)
users=$(mktemp)
trap 'rm -f "$blocks" "$users"' EXIT
seen=" "
for spec in "$@"; do
  kind=${spec%%:*}
  id=${spec#*:}
  token='^[A-Za-z0-9_-]{1,64}$'
  if [[ "$spec" != *:* || ! "$kind" =~ $token || ! "$id" =~ $token ]]; then
    echo "error: '$spec' is not KIND:ID (each 1-64 of A-Z a-z 0-9 _ -)" >&2
    exit 2
  fi
  name=$(printf '%s' "$id" | tr 'a-z-' 'A-Z_')
  if [[ "$seen" == *" $name "* ]]; then
    echo "error: agent id '$id' is given twice (ids that differ only in case or - vs _ share a user)" >&2
    exit 2
  fi
  seen+="$name "
  [ "$seen" = " $name " ] || echo >>"$blocks"
  cat >>"$blocks" <<BLOCK
  AGENT_$name = {
    publish = {
      allow = [
        "deploy.progress.*"
        "agent.heartbeat.$kind.$id"
        # runtime-log batches of this agent's streams
        "agent.logs.$id.*.data"
      ]
    }
    subscribe = {
      allow = [
        "deploy.request.$kind"
        "agent.rpc.$kind.>"
        "agent.cmd.$id.>"
        "agent.logs.$id.*.credit"
        "deploy.cancel.>"
        # JetStream publish acks
        "_INBOX.>"
      ]
    }
    # answer requests: one reply to the requester's reply subject
    allow_responses = true
  }
BLOCK
  echo "    { user: \"agent-$id\", password: \$NATS_PW_AGENT_$name, permissions: \$AGENT_$name }" >>"$users"
done

awk -v blocks="$blocks" -v users="$users" '
  function emit(file,   line) { while ((getline line < file) > 0) print line; close(file) }
  /^[ \t]*# END AGENTS$/ || /^[ \t]*# END AGENT USERS$/ { skip = 0 }
  !skip { print }
  /^[ \t]*# BEGIN AGENTS$/ { emit(blocks); skip = 1; found++ }
  /^[ \t]*# BEGIN AGENT USERS$/ { emit(users); skip = 1; found++ }
  END { if (found != 2) { print "error: the input has not both marker pairs" > "/dev/stderr"; exit 1 } }
'
