# why: -r after the subcommand names /srv/restic/main, the locked repository
repository "main" {
  tool          = "restic"
  location      = "/srv/restic/main"
  password_file = "/secrets/restic-pass"
}

job "j" {
  repository = "main"
  command = [
    "restic", "backup",
    "-r", "/srv/restic/main",
    "/data",
  ]
  env        = { RESTIC_CACHE_DIR = "/var/cache/restic" }
}
