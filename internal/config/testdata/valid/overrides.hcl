# Top-level lock settings and per-job overrides, merged field by field.
consul {
  address    = "10.0.0.5:8500"
  prefix     = "backups/repolock"
  token_file = "/secrets/consul-token"
  datacenter = "dc2"
}

lock {
  ttl          = "1m"
  wait         = "5m"
  kill_timeout = "20s"
  kill_signal  = "sigint"
}

repository "photos" {
  tool          = "restic"
  location      = "s3:s3.amazonaws.com/bucket/photos"
  password_file = "/secrets/restic-pass"
  lock_key      = "photos.main"
  unlock_native = "all"
  env           = { AWS_REGION = "eu-west-1" }
}

repository "archive" {
  tool             = "borg"
  location         = "/mnt/nfs/borg/archive"
  password_command = "cat /secrets/borg-pass"
  shared_local     = true
}

# No lock block: exactly the top-level settings.
job "photos-nightly" {
  repository = "photos"
  command    = ["restic", "backup", "/data/photos"]
  dir        = "/data"
  env        = { RESTIC_COMPRESSION = "max" }
}

# Shorter ttl: renew_interval and margin follow it, kill_timeout is lowered to fit.
job "photos-check" {
  repository = "photos"
  command    = ["restic", "check"]
  mode       = "exclusive"
  lock {
    ttl          = "15s"
    kill_timeout = "3s"
  }
}

# Only behaviour overrides: timing stays the top-level one.
job "archive-daily" {
  repository = "archive"
  command    = ["borg", "create", "::daily", "/srv"]
  mode       = "exclusive"
  lock {
    on_busy     = "skip"
    wait        = "0s"
    kill_signal = "TERM"
  }
}

# Declared after its use above: references do not depend on file order.
repository "late" {
  tool     = "exec"
  location = "/srv/other"
}
