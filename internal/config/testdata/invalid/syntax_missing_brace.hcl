# want: Unclosed configuration block
repository "photos" {
  tool     = "restic"
  location = "/srv/restic/photos"
