# why: restic copy into main from /srv/restic/second, which repository block second names
repository "main" {
  tool          = "restic"
  location      = "/srv/restic/main"
  password_file = "/secrets/restic-pass"
}

repository "second" {
  tool          = "restic"
  location      = "/srv/restic/second"
  password_file = "/secrets/restic-pass-second"
}

job "j" {
  repository = "main"
  command    = ["restic", "copy", "--from-repo", "/srv/restic/second"]
}
