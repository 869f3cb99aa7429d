# why: repository env sets RESTIC_REPOSITORY, which competes with the repository's own location
repository "main" {
  tool          = "restic"
  location      = "/srv/restic/main"
  password_file = "/secrets/restic-pass"
  env           = { RESTIC_REPOSITORY = "/srv/restic/other" } # offending
}

job "j" {
  repository = "main"
  command    = ["restic", "backup", "/data"]
}
