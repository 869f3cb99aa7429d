# want: set by repolock
repository "photos" {
  tool     = "restic"
  location = "/srv/restic/photos"
}
job "nightly" {
  repository = "photos"
  command    = ["restic", "backup", "/data"]
  env        = { REPOLOCK_KEY = "other" } # <-- error
}
