# want: Duplicate lock block
lock {
  ttl = "30s"
}
lock { # <-- error
  ttl = "40s"
}
repository "photos" {
  tool     = "restic"
  location = "/srv/restic/photos"
}
