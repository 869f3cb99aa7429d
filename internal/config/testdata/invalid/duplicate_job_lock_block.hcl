# want: Duplicate lock block
repository "photos" {
  tool     = "restic"
  location = "/srv/restic/photos"
}
job "nightly" {
  repository = "photos"
  command    = ["restic", "backup", "/data"]
  lock {
    ttl = "30s"
  }
  lock { # <-- error
    ttl = "40s"
  }
}
