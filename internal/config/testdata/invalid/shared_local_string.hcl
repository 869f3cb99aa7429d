# want: a bool is required
repository "photos" {
  tool         = "restic"
  location     = "/srv/restic/photos"
  shared_local = "yes" # <-- error
}
