#!/usr/bin/env bash
# make demo: a throwaway Consul agent on loopback, two commands contending
# for one lock, and `repolock status` while and after they run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/.bin
# An operator's own Consul and restic replace the pinned ones (README
# "Compatibility and licences").
consul=${CONSUL_BIN:-$bin/consul}
restic=${RESTIC_BIN:-$bin/restic}
work=$(mktemp -d)
cd "$work" # status and break read ./config.hcl when present; the demo has none
agent_pid=""
cleanup() {
	if [ -n "$agent_pid" ]; then
		kill "$agent_pid" 2>/dev/null || true
		wait "$agent_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap 'rc=$?; cleanup; exit $rc' EXIT

free_port() { # first port from $1 on that nothing listens
	local p=$1
	while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do p=$((p + 1)); done
	echo "$p"
}
http=$(free_port 18500); serf=$(free_port $((http + 1))); server=$(free_port $((serf + 1)))

echo "==> starting a throwaway Consul agent on 127.0.0.1:$http"
"$consul" agent -dev -node demo -bind 127.0.0.1 -client 127.0.0.1 \
	-hcl "ports { http = $http, serf_lan = $serf, serf_wan = -1, server = $server, dns = -1, grpc = -1, grpc_tls = -1 }" \
	-hcl 'session_ttl_min = "1s"' -hcl 'log_level = "error"' >"$work/consul.log" 2>&1 &
agent_pid=$!
export CONSUL_HTTP_ADDR=127.0.0.1:$http
ready=""
for _ in $(seq 150); do "$bin/repolock" status >/dev/null 2>&1 && ready=1 && break; sleep 0.1; done
[ -n "$ready" ] || { echo "Consul agent did not come up:" >&2; cat "$work/consul.log" >&2; exit 1; }

# The demo runs `repolock` and `restic` by name: a folder holding the built
# repolock and the chosen restic.
mkdir -p "$work/path"
ln -s "$bin/repolock" "$work/path/repolock"
ln -s "$(command -v "$restic")" "$work/path/restic"
export PATH="$work/path:$PATH"
. "$root/jobspecs/demo-jobs.sh"

echo
echo "==> repolock status"
"$bin/repolock" status -config "$work/demo.hcl"
