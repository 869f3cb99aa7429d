# why: no -r: restic uses RESTIC_REPOSITORY, which repolock sets from the location
repository "main" {
  tool          = "restic"
  location      = "/srv/restic/main"
  password_file = "/secrets/restic-pass"
}

job "j" {
  repository = "main"
  command    = ["restic", "backup", "/data"]
  env        = { RESTIC_CACHE_DIR = "/var/cache/restic" }
}
