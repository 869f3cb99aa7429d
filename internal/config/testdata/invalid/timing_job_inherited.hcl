# want: renew_interval (20s) + kill_timeout (35s)
lock {
  ttl            = "1m"
  renew_interval = "20s"
}
repository "photos" {
  tool     = "restic"
  location = "/srv/restic/photos"
}
job "nightly" {
  repository = "photos"
  command    = ["restic", "backup", "/data"]
  lock {
    kill_timeout = "35s" # <-- error
  }
}
