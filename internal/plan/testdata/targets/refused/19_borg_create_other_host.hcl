# why: borg create writes to otherhost:/srv/borg/b, the same path on another host, not the local repository b
repository "b" {
  tool          = "borg"
  location      = "/srv/borg/b"
  password_file = "/secrets/borg-pass"
}

job "j" {
  repository = "b"
  command    = ["borg", "create", "otherhost:/srv/borg/b::a", "/data"] # offending
}
