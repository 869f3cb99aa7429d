# why: borg create file:///srv/borg/b::a is the local path /srv/borg/b as a file URL
repository "b" {
  tool          = "borg"
  location      = "/srv/borg/b"
  password_file = "/secrets/borg-pass"
}

job "j" {
  repository = "b"
  command    = ["borg", "create", "file:///srv/borg/b::a", "/data"]
}
