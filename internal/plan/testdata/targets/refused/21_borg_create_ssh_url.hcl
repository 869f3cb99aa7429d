# why: borg create writes to ssh://nas/srv/borg/b, a remote repository, not the local repository b
repository "b" {
  tool          = "borg"
  location      = "/srv/borg/b"
  password_file = "/secrets/borg-pass"
}

job "j" {
  repository = "b"
  command    = ["borg", "create", "ssh://nas/srv/borg/b::x", "/data"] # offending
}
