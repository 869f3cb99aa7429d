# Sourced by demo.sh with CONSUL_HTTP_ADDR pointing at the demo agent,
# repolock and restic first in PATH and $work a scratch directory.

echo "==> a small local restic repository and a demo config"
mkdir -p "$work/data" "$work/cache"
cp "$root/README.md" "$root/config.hcl" "$work/data/"
head -c 2000000 /dev/urandom > "$work/data/random.bin"
echo "demo-password-$$" > "$work/restic-pass"
RESTIC_REPOSITORY="$work/repo" RESTIC_PASSWORD_FILE="$work/restic-pass" RESTIC_CACHE_DIR="$work/cache" \
	restic init --quiet
cat > "$work/demo.hcl" <<HCL
lock {
  ttl          = "5s"  # short: the first grant on a new Consul waits one ttl (README, "What repolock trusts")
  kill_timeout = "2s"
  wait         = "1m"
}
repository "demo" {
  tool          = "restic"
  location      = "$work/repo"
  password_file = "$work/restic-pass"
  unlock_native = "stale"
  env           = { RESTIC_CACHE_DIR = "$work/cache" }
}
job "backup" {
  repository = "demo"
  command    = ["restic", "backup", "$work/data"]
}
job "snapshots" {
  repository = "demo"
  command    = ["restic", "snapshots"]
}
HCL
repolock validate -config "$work/demo.hcl"

echo
echo "==> repolock run backup: restic backup under the repository's lock"
echo "    (a new Consul has no epoch key yet: this first grant waits one ttl, 5s)"
repolock run -config "$work/demo.hcl" backup
echo
echo "==> repolock run snapshots: the snapshot list, under the lock again"
repolock run -config "$work/demo.hcl" snapshots

echo
echo "==> two commands contend for one lock; the second waits for the first"
repolock exec -key demo-contention -- sh -c 'echo "first holder: fencing token $REPOLOCK_FENCING_TOKEN"; sleep 2' &
first=$!
sleep 0.7
echo "==> while the first runs, its holder record in Consul KV:"
repolock status demo-contention
repolock exec -key demo-contention -wait 1m -- sh -c 'echo "second holder: fencing token $REPOLOCK_FENCING_TOKEN"'
wait "$first"
