# why: borg prune names /srv/borg/other, not the locked repository b (/srv/borg/b)
repository "b" {
  tool          = "borg"
  location      = "/srv/borg/b"
  password_file = "/secrets/borg-pass"
}

job "j" {
  repository = "b"
  command    = ["borg", "prune", "--keep-last", "3", "/srv/borg/other"] # offending
}
