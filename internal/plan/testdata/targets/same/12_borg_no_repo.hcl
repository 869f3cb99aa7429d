# why: borg create ::{now} names no repository: borg uses BORG_REPO, which repolock sets from the location
repository "b" {
  tool          = "borg"
  location      = "/srv/borg/b"
  password_file = "/secrets/borg-pass"
}

job "j" {
  repository = "b"
  command    = ["borg", "create", "::{now}", "/data"]
}
