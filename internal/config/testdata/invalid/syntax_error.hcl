# want: Unterminated template string
repository "photos" {
  tool     = "restic
  location = "/srv/restic/photos"
}
