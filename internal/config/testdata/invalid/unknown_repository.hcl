# want: Did you mean "photos"?
repository "photos" {
  tool     = "restic"
  location = "/srv/restic/photos"
}
job "nightly" {
  repository = "photo" # <-- error
  command    = ["restic", "backup", "/data"]
}
