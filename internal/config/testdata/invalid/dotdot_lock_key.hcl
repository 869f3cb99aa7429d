# want: is a path step
repository "photos" {
  tool     = "restic"
  location = "/srv/restic/photos"
  lock_key = ".." # <-- error
}
