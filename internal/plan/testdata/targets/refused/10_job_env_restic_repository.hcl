# why: job env sets RESTIC_REPOSITORY, which would point restic at another repository than the locked one
repository "main" {
  tool          = "restic"
  location      = "/srv/restic/main"
  password_file = "/secrets/restic-pass"
}

job "j" {
  repository = "main"
  command    = ["restic", "backup", "/data"]
  env = { # offending
    RESTIC_CACHE_DIR  = "/var/cache/restic"
    RESTIC_REPOSITORY = "/srv/restic/other"
  }
}
