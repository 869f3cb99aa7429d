# want: null value is not allowed
repository "photos" {
  tool     = null # <-- error
  location = "/srv/restic/photos"
}
