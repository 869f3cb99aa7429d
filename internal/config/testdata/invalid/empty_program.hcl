# want: first element of command is the program
repository "photos" {
  tool     = "restic"
  location = "/srv/restic/photos"
}
job "nightly" {
  repository = "photos"
  command    = ["", "backup", "/data"] # <-- error
}
