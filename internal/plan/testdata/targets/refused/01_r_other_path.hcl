# why: -r before the subcommand names /srv/restic/other, not the locked repository main (/srv/restic/main)
repository "main" {
  tool          = "restic"
  location      = "/srv/restic/main"
  password_file = "/secrets/restic-pass"
}

job "j" {
  repository = "main"
  command    = ["restic", "-r", "/srv/restic/other", "backup", "/data"] # offending
}
