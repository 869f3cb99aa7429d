# want: Unsupported argument
repository "photos" {
  tool     = "restic"
  location = "/srv/restic/photos"
}
ttl = "30s" # <-- error
