# want: Durations are strings with a unit
lock {
  wait = "10 minutes" # <-- error
}
repository "photos" {
  tool     = "restic"
  location = "/srv/restic/photos"
}
job "nightly" {
  repository = "photos"
  command    = ["restic", "backup", "/data"]
}
