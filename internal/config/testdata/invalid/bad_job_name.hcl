# want: is not a valid job name
repository "photos" {
  tool     = "restic"
  location = "/srv/restic/photos"
}
job "photos nightly" { # <-- error
  repository = "photos"
  command    = ["restic", "backup", "/data"]
}
