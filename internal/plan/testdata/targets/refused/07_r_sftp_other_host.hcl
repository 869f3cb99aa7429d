# why: -r sftp:backup@nas:/srv/restic/main is the same path on another host (nas), not the local repository main
repository "main" {
  tool          = "restic"
  location      = "/srv/restic/main"
  password_file = "/secrets/restic-pass"
}

job "j" {
  repository = "main"
  command    = ["restic", "-r", "sftp:backup@nas:/srv/restic/main", "backup", "/data"] # offending
}
