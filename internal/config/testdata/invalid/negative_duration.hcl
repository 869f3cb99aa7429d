# want: kill_timeout (-5s) must not be negative
lock {
  kill_timeout = "-5s" # <-- error
}
repository "photos" {
  tool     = "restic"
  location = "/srv/restic/photos"
}
job "nightly" {
  repository = "photos"
  command    = ["restic", "backup", "/data"]
}
