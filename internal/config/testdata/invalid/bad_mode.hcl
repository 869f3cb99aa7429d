# want: Did you mean "exclusive"?
repository "photos" {
  tool     = "restic"
  location = "/srv/restic/photos"
}
job "nightly" {
  repository = "photos"
  command    = ["restic", "prune"]
  mode       = "exclusiv" # <-- error
}
