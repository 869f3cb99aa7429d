# want: renew_interval (10s) + kill_timeout (10s) + margin (3s) must be less than ttl (20s)
lock {
  ttl            = "20s" # <-- error
  renew_interval = "10s"
  kill_timeout   = "10s"
  margin         = "3s"
}
repository "photos" {
  tool     = "restic"
  location = "/srv/restic/photos"
}
job "nightly" {
  repository = "photos"
  command    = ["restic", "backup", "/data"]
}
