# want: unlock_native must be "never", "stale" or "all", not "always"
repository "photos" {
  tool          = "restic"
  location      = "/srv/restic/photos"
  unlock_native = "always" # <-- error
}
