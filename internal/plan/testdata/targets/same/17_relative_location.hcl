# why: relative location repos/main (resolved against this file's directory) and no -r in the command
repository "main" {
  tool          = "restic"
  location      = "repos/main"
  password_file = "/secrets/restic-pass"
}

job "j" {
  repository = "main"
  command    = ["restic", "backup", "/data"]
  env        = { RESTIC_CACHE_DIR = "/var/cache/restic" }
}
