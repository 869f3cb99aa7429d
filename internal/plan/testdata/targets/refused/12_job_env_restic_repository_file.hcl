# why: job env sets RESTIC_REPOSITORY_FILE, which makes restic read the repository from a file at run time
repository "main" {
  tool          = "restic"
  location      = "/srv/restic/main"
  password_file = "/secrets/restic-pass"
}

job "j" {
  repository = "main"
  command    = ["restic", "backup", "/data"]
  env        = { RESTIC_REPOSITORY_FILE = "/etc/restic/repo" } # offending
}
