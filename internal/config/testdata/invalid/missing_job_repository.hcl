# want: The argument "repository" is required
repository "photos" {
  tool     = "restic"
  location = "/srv/restic/photos"
}
job "nightly" { # <-- error
  command = ["restic", "backup", "/data"]
}
