# want: Empty location
repository "photos" {
  tool     = "restic"
  location = "  " # <-- error
}
