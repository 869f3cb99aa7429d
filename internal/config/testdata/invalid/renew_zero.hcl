# want: renew_interval (0s) must be at least 100ms
lock {
  renew_interval = "0s" # <-- error
}
repository "photos" {
  tool     = "restic"
  location = "/srv/restic/photos"
}
job "nightly" {
  repository = "photos"
  command    = ["restic", "backup", "/data"]
}
