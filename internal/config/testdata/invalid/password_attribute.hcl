# want: Use password_file or password_command
repository "photos" {
  tool     = "restic"
  location = "/srv/restic/photos"
  password = "correct horse battery staple" # <-- error
}
