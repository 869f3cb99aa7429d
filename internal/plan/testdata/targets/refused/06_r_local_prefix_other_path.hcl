# why: -r local:/srv/restic/other is the local backend at another path than main (/srv/restic/main)
repository "main" {
  tool          = "restic"
  location      = "/srv/restic/main"
  password_file = "/secrets/restic-pass"
}

job "j" {
  repository = "main"
  command    = ["restic", "-r", "local:/srv/restic/other", "backup", "/data"] # offending
}
