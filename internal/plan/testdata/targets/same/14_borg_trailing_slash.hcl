# why: borg create /srv/borg/b/::a differs from the location only by a trailing slash
repository "b" {
  tool          = "borg"
  location      = "/srv/borg/b"
  password_file = "/secrets/borg-pass"
}

job "j" {
  repository = "b"
  command    = ["borg", "create", "/srv/borg/b/::a", "/data"]
}
