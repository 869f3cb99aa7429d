# want: Unsupported block type
repository "photos" {
  tool     = "restic"
  location = "/srv/restic/photos"
}
backup "photos" { # <-- error
}
