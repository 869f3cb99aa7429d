# want: at most one default
repository "photos" {
  tool     = "restic"
  location = env("HOME", "a", "b") # <-- error
}
