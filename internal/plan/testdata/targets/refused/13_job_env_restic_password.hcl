# why: job env sets RESTIC_PASSWORD: a secret in the config, overriding the repository's password_file
repository "main" {
  tool          = "restic"
  location      = "/srv/restic/main"
  password_file = "/secrets/restic-pass"
}

job "j" {
  repository = "main"
  command    = ["restic", "backup", "/data"]
  env        = { RESTIC_PASSWORD = "not-a-real-password" } # offending
}
