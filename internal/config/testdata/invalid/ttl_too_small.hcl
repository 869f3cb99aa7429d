# want: must be between 1s and 24h0m0s
lock {
  ttl = "500ms" # <-- error
}
repository "photos" {
  tool     = "restic"
  location = "/srv/restic/photos"
}
job "nightly" {
  repository = "photos"
  command    = ["restic", "backup", "/data"]
}
