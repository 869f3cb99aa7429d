# why: -r names /srv/restic/main, exactly the location of main
repository "main" {
  tool          = "restic"
  location      = "/srv/restic/main"
  password_file = "/secrets/restic-pass"
}

job "j" {
  repository = "main"
  command    = ["restic", "-r", "/srv/restic/main", "backup", "/data"]
}
