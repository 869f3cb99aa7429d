# want: The argument "location" is required
repository "photos" { # <-- error
  tool = "restic"
}
