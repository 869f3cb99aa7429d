# why: restic copy --from-repo names /srv/restic/unconfigured, which no repository block names
repository "main" {
  tool          = "restic"
  location      = "/srv/restic/main"
  password_file = "/secrets/restic-pass"
}

job "j" {
  repository = "main"
  command    = ["restic", "copy", "--from-repo", "/srv/restic/unconfigured"] # offending
}
