# why: --repo /srv/restic/./main cleans to /srv/restic/main
repository "main" {
  tool          = "restic"
  location      = "/srv/restic/main"
  password_file = "/secrets/restic-pass"
}

job "j" {
  repository = "main"
  command    = ["restic", "--repo", "/srv/restic/./main", "backup", "/data"]
}
