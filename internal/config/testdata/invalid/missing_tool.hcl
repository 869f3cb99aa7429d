# want: The argument "tool" is required
repository "photos" { # <-- error
  location = "/srv/restic/photos"
}
