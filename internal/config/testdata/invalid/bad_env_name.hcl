# want: cannot be an environment variable name
repository "photos" {
  tool     = "restic"
  location = "/srv/restic/photos"
  env      = { "A=B" = "c" } # <-- error
}
