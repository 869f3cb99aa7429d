# want: The argument "command" is required
repository "photos" {
  tool     = "restic"
  location = "/srv/restic/photos"
}
job "nightly" { # <-- error
  repository = "photos"
}
