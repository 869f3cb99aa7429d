# want: Did you mean "password_file"?
repository "photos" {
  tool         = "restic"
  location     = "/srv/restic/photos"
  passwordfile = "/secrets/pass" # <-- error
}
