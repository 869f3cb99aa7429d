# why: sftp://other@NAS:22//srv/restic/main is the same absolute sftp path: user and default port do not matter, host case does not matter
repository "main" {
  tool          = "restic"
  location      = "sftp:backup@nas:/srv/restic/main"
  password_file = "/secrets/restic-pass"
}

job "j" {
  repository = "main"
  command    = ["restic", "-r", "sftp://other@NAS:22//srv/restic/main", "backup", "/data"]
}
