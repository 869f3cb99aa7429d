# why: -r local:/srv/restic/main is the local backend spelled out; same repository
repository "main" {
  tool          = "restic"
  location      = "/srv/restic/main"
  password_file = "/secrets/restic-pass"
}

job "j" {
  repository = "main"
  command    = ["restic", "-r", "local:/srv/restic/main", "backup", "/data"]
}
