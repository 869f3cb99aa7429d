# why: --repo=/srv/restic/main/ differs from the location only by a trailing slash
repository "main" {
  tool          = "restic"
  location      = "/srv/restic/main"
  password_file = "/secrets/restic-pass"
}

job "j" {
  repository = "main"
  command    = ["restic", "--repo=/srv/restic/main/", "backup", "/data"]
  env        = { RESTIC_CACHE_DIR = "/var/cache/restic" }
}
