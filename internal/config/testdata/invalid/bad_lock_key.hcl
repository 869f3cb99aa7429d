# want: not a valid lock key
repository "photos" {
  tool     = "restic"
  location = "/srv/restic/photos"
  lock_key = "nas/photos" # <-- error
}
