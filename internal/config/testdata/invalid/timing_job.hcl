# want: must be less than ttl (12s)
repository "photos" {
  tool     = "restic"
  location = "/srv/restic/photos"
}
job "nightly" {
  repository = "photos"
  command    = ["restic", "backup", "/data"]
  lock {
    ttl = "12s" # <-- error
  }
}
