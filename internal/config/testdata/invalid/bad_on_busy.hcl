# want: on_busy "wait" must be "fail" or "skip"
repository "photos" {
  tool     = "restic"
  location = "/srv/restic/photos"
}
job "nightly" {
  repository = "photos"
  command    = ["restic", "backup", "/data"]
  lock {
    on_busy = "wait" # <-- error
  }
}
