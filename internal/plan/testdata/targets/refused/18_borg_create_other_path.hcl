# why: borg create writes to /srv/borg/other, not the locked repository b (/srv/borg/b)
repository "b" {
  tool          = "borg"
  location      = "/srv/borg/b"
  password_file = "/secrets/borg-pass"
}

job "j" {
  repository = "b"
  command    = ["borg", "create", "/srv/borg/other::{now}", "/data"] # offending
}
