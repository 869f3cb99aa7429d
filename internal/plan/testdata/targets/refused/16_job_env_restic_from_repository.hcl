# why: job env sets RESTIC_FROM_REPOSITORY, a copy source hidden in the environment; refused outright
repository "main" {
  tool          = "restic"
  location      = "/srv/restic/main"
  password_file = "/secrets/restic-pass"
}

job "j" {
  repository = "main"
  command    = ["restic", "copy"]
  env        = { RESTIC_FROM_REPOSITORY = "/srv/restic/other" } # offending
}
