# want: kill_timeout (10s) + margin (1s) must be less than ttl (10s)
lock {
  ttl = "10s" # <-- error
}
repository "photos" {
  tool     = "restic"
  location = "/srv/restic/photos"
}
job "nightly" {
  repository = "photos"
  command    = ["restic", "backup", "/data"]
}
