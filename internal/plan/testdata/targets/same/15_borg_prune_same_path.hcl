# why: borg prune names /srv/borg/b, the locked repository
repository "b" {
  tool          = "borg"
  location      = "/srv/borg/b"
  password_file = "/secrets/borg-pass"
}

job "j" {
  repository = "b"
  command    = ["borg", "prune", "--keep-last", "3", "/srv/borg/b"]
}
