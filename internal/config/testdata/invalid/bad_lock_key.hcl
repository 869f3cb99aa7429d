# want: use only A-Z a-z 0-9
repository "photos" {
  tool     = "restic"
  location = "/srv/restic/photos"
  lock_key = "nas/photos" # <-- error
}
