# repolock configuration: every block and option, with its default where it has one.
# Check it with `repolock validate -config config.hcl`; run a job with `repolock run photos-nightly`.
# Expressions may call env("NAME"), env("NAME", "default"), file("path"), trimspace, lower, upper, join and format.

# Consul connection; every attribute is optional and the CONSUL_HTTP_* environment variables fill the rest.
consul {
  # Agent address; CONSUL_HTTP_ADDR when left out.
  address = env("CONSUL_HTTP_ADDR", "127.0.0.1:8500")
  # KV prefix under which locks, holders and run history live (default "repolock").
  prefix = "repolock"
  # File holding the ACL token; a literal `token` is refused, since this file gets rendered and printed.
  token_file = env("CONSUL_HTTP_TOKEN_FILE", "")
  # TLS, for an agent that speaks HTTPS (address = "https://…"): the CA that signed the agent's certificate
  # (a file, or a directory of them), repolock's client certificate and key for an agent with verify_incoming,
  # and the name to check in the agent's certificate (Consul's are server.<datacenter>.<domain>). Each
  # overrides its CONSUL_CACERT, CONSUL_CAPATH, CONSUL_CLIENT_CERT, CONSUL_CLIENT_KEY, CONSUL_TLS_SERVER_NAME;
  # `validate` checks that the files are readable. None of them reaches the backup command.
  ca_file         = env("CONSUL_CACERT", "")
  ca_path         = env("CONSUL_CAPATH", "")
  cert_file       = env("CONSUL_CLIENT_CERT", "")
  key_file        = env("CONSUL_CLIENT_KEY", "")
  tls_server_name = env("CONSUL_TLS_SERVER_NAME", "")
  # Datacenter whose servers hold the locks; the agent's own when left out. Every host of a repository names
  # the same one (README "Several datacenters"); a name the agent does not know fails at once (exit 78).
  datacenter = "dc1"
  # A server agent's HTTP address that creates the sessions when `datacenter` is not the agent's own and the
  # agent is a client agent (Consul refuses that on client agents), e.g. "consul-server.dc2:8500"; the agent
  # itself when empty.
  session_address = ""
  # Catalog-only node the lock sessions are bound to (registered if missing; the token needs node:write and
  # session:write on it); default "repolock". Not an agent's node: its deregistration would drop the sessions.
  session_node = "repolock"
}

# Lock defaults for every job; a job's own lock block overrides them field by field.
lock {
  # Consul session TTL, 1s..24h (Consul itself refuses less than its session_ttl_min, 10s by default); default "30s".
  ttl = "30s"
  # How long to wait for a busy repository before giving up; "0s" gives up at once; default "1h".
  wait = "10m"
  # What giving up means: "fail" exits 75, "skip" exits 0; default "fail".
  on_busy = "fail"
  # Signal sent to the command's process group when the lock can no longer be proven; default "SIGTERM".
  kill_signal = "SIGTERM"
  # Time the command gets to exit after kill_signal before SIGKILL; default "10s".
  kill_timeout = "10s"
  # Time between session renewals; default ttl/3.
  renew_interval = "10s"
  # Safety margin between SIGKILL and the earliest session expiry; default ttl/10.
  # renew_interval + kill_timeout + margin must stay below ttl.
  margin = "3s"
}

# Prometheus metrics of every run (a job's own metrics block overrides these).
metrics {
  # node_exporter's --collector.textfile.directory: one file per job, replaced atomically.
  textfile = "/var/lib/prometheus/node-exporter"
  # A Pushgateway for hosts without node_exporter: one group per job and repository.
  # pushgateway = "http://pushgateway.service.consul:9091"
}

# A hook for every job: a healthchecks.io ping on each outcome. Hooks run after the
# lock is released (start: once it is held), bounded by timeout; a failing hook never
# changes the exit code. They get PATH, REPOLOCK_* (REPOLOCK_EVENT, _OUTCOME, _EXIT_CODE,
# _ERROR, …) and their own env, nothing else.
hook "healthchecks" {
  on      = ["start", "success", "failure", "lost", "busy"]
  # healthchecks.io takes /start, and the exit code as /<code> (0: success).
  command = ["sh", "-c", "case $REPOLOCK_EVENT in start) p=start ;; *) p=$REPOLOCK_EXIT_CODE ;; esac; curl -fsS -m 10 --retry 3 -o /dev/null \"$HC_URL/$p\""]
  env     = { HC_URL = "https://hc-ping.com/your-uuid" }
  timeout = "30s"
}

# A restic repository on a NAS over SFTP.
repository "photos" {
  # Backup tool: "restic", "borg" or "exec".
  tool = "restic"
  # Repository location as the tool spells it; spellings of one repository share one lock.
  location = "sftp:backup@nas:/srv/restic/photos"
  # Password file handed to restic as RESTIC_PASSWORD_FILE; it need not exist when the config is checked.
  password_file = env("RESTIC_PASSWORD_FILE", "/secrets/restic-pass")
  # Explicit lock key instead of the identity derived from location (letters, digits, '.', '_', '-').
  lock_key = "photos"
  # May repolock clear restic's own locks, under an exclusive cluster lock: "never" (default), "stale" or "all".
  # With "stale" or "all", a job that exits "native lock busy" (restic 11) is healed and run once more,
  # and a restic killed by a signal leaves no lock behind. "all" only if every restic of it runs under repolock.
  unlock_native = "stale"
  # Extra environment for every job on this repository; RESTIC_REPOSITORY*, RESTIC_PASSWORD* and
  # RESTIC_FROM_* are repolock's to set and refused here.
  env = {
    RESTIC_CACHE_DIR = env("RESTIC_CACHE_DIR", "/var/cache/restic")
  }
}

# A local borg repository on storage that several hosts mount.
repository "archive" {
  # Backup tool: "restic", "borg" or "exec".
  tool = "borg"
  # Repository location; a local path is bound to this host unless shared_local is true,
  # and a relative one is relative to this file's directory.
  location = "/mnt/shared/borg/archive"
  # Command printing the passphrase, handed to borg as BORG_PASSCOMMAND (use it or password_file, not both).
  password_command = "cat ${env("BORG_PASSPHRASE_FILE", "/secrets/borg-pass")}"
  # The local path is on shared storage, so every host that mounts it contends for the same lock.
  shared_local = true
}

# Nightly backup of the photos; mode is inferred from the command (restic backup: shared).
job "photos-nightly" {
  # Repository block this job locks.
  repository = "photos"
  # How often this job should succeed: `repolock status` flags it, and exits 1, when
  # its last success is older.
  expect_every = "26h"
  # Command and arguments, run without a shell; secrets go by environment or file, never here.
  command = ["restic", "backup", "--one-file-system", "/data/photos"]
  # Working directory of the command.
  dir = "/"
  # Extra environment for this job only.
  env = {
    RESTIC_COMPRESSION = "auto"
  }
}

# Weekly cleanup; forget --prune rewrites the repository, so it needs the lock to itself.
job "photos-prune" {
  # Repository block this job locks.
  repository = "photos"
  # Command and arguments.
  command = ["restic", "forget", "--prune", "--keep-daily", "7"]
  # "shared" or "exclusive"; stated here although restic forget would be inferred as exclusive.
  mode = "exclusive"
  # Lock settings for this job only; unset fields come from the top-level lock block.
  lock {
    # A prune can wait for the nightly backup to finish.
    wait = "2h"
    # A prune that cannot start is not worth failing the Nomad job over; the next run catches up.
    on_busy = "skip"
    # restic treats SIGINT like Ctrl-C and cleans up its own lock.
    kill_signal = "INT"
  }
}

# Daily borg archive; borg writes need the lock exclusively.
job "archive-daily" {
  # Repository block this job locks.
  repository = "archive"
  # Command and arguments; borg reads the repository from BORG_REPO.
  command = ["borg", "create", "--stats", "::daily-{now:%Y-%m-%d}", "/srv/data"]
  # Lock settings for this job only.
  lock {
    # A longer TTL tolerates longer Consul outages; renew_interval and margin are inherited as set above.
    ttl = "1m"
    # borg checkpoints on SIGINT; give it time to write one.
    kill_timeout = "30s"
  }
}
