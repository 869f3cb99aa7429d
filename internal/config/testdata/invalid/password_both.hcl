# want: Set password_file or password_command, not both
repository "photos" {
  tool             = "restic"
  location         = "/srv/restic/photos"
  password_file    = "/secrets/restic-pass"
  password_command = "cat /secrets/restic-pass" # <-- error
}
