# why: repository env sets BORG_PASSCOMMAND, which competes with the repository's password_file
repository "b" {
  tool          = "borg"
  location      = "/srv/borg/b"
  password_file = "/secrets/borg-pass"
  env           = { BORG_PASSCOMMAND = "cat /secrets/other-pass" } # offending
}

job "j" {
  repository = "b"
  command    = ["borg", "create", "::{now}", "/data"]
}
