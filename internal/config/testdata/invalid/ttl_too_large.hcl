# want: must be between 1s and 24h0m0s
repository "photos" {
  tool     = "restic"
  location = "/srv/restic/photos"
}
job "nightly" {
  repository = "photos"
  command    = ["restic", "backup", "/data"]
  lock {
    ttl = "48h" # <-- error
  }
}
