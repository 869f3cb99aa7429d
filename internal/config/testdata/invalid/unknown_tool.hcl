# want: Did you mean "restic"?
repository "photos" {
  tool     = "rustic" # <-- error
  location = "/srv/restic/photos"
}
