# why: -r /srv/restic/x/../main cleans to /srv/restic/main
repository "main" {
  tool          = "restic"
  location      = "/srv/restic/main"
  password_file = "/secrets/restic-pass"
}

job "j" {
  repository = "main"
  command    = ["restic", "-r", "/srv/restic/x/../main", "backup", "/data"]
}
