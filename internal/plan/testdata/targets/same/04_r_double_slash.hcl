# why: -r /srv/restic//main has a doubled slash; cleaned it is /srv/restic/main
repository "main" {
  tool          = "restic"
  location      = "/srv/restic/main"
  password_file = "/secrets/restic-pass"
}

job "j" {
  repository = "main"
  command    = ["restic", "-r", "/srv/restic//main", "backup", "/data"]
}
