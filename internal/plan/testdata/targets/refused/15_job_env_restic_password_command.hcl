# why: job env sets RESTIC_PASSWORD_COMMAND, overriding the repository's password source
repository "main" {
  tool          = "restic"
  location      = "/srv/restic/main"
  password_file = "/secrets/restic-pass"
}

job "j" {
  repository = "main"
  command    = ["restic", "backup", "/data"]
  env        = { RESTIC_PASSWORD_COMMAND = "cat /secrets/other-pass" } # offending
}
