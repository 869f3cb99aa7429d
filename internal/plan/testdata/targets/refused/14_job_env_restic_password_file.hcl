# why: job env sets RESTIC_PASSWORD_FILE, overriding the repository's password_file
repository "main" {
  tool          = "restic"
  location      = "/srv/restic/main"
  password_file = "/secrets/restic-pass"
}

job "j" {
  repository = "main"
  command    = ["restic", "backup", "/data"]
  env        = { RESTIC_PASSWORD_FILE = "/secrets/other-pass" } # offending
}
