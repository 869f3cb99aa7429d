# want: Extraneous label for lock
repository "photos" {
  tool     = "restic"
  location = "/srv/restic/photos"
}
job "nightly" {
  repository = "photos"
  command    = ["restic", "backup", "/data"]
  lock "fast" { # <-- error
    ttl = "15s"
  }
}
