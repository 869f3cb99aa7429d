# want: Call to unknown function
repository "photos" {
  tool     = "restic"
  location = getenv("HOME") # <-- error
}
