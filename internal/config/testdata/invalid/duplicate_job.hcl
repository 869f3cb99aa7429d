# want: already declared on line 6
repository "photos" {
  tool     = "restic"
  location = "/srv/restic/photos"
}
job "nightly" {
  repository = "photos"
  command    = ["restic", "backup", "/data"]
}
job "nightly" { # <-- error
  repository = "photos"
  command    = ["restic", "forget", "--prune"]
}
