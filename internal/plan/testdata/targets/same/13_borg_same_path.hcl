# why: borg create /srv/borg/b::{now} names the locked repository b
repository "b" {
  tool          = "borg"
  location      = "/srv/borg/b"
  password_file = "/secrets/borg-pass"
}

job "j" {
  repository = "b"
  command    = ["borg", "create", "/srv/borg/b::{now}", "/data"]
}
