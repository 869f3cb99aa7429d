# want: An argument named "timeout" is not expected here
repository "photos" {
  tool     = "restic"
  location = "/srv/restic/photos"
}
job "nightly" {
  repository = "photos"
  command    = ["restic", "backup", "/data"]
  lock {
    timeout = "5s" # <-- error
  }
}
