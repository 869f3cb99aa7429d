# why: job env sets BORG_REPO, which would point borg at another repository than the locked one
repository "b" {
  tool          = "borg"
  location      = "/srv/borg/b"
  password_file = "/secrets/borg-pass"
}

job "j" {
  repository = "b"
  command    = ["borg", "create", "::{now}", "/data"]
  env        = { BORG_REPO = "/srv/borg/other" } # offending
}
