# want: Duplicate repository "photos"
repository "photos" {
  tool     = "restic"
  location = "/srv/restic/photos"
}
repository "photos" { # <-- error
  tool     = "borg"
  location = "/srv/borg/photos"
}
