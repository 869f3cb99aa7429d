# want: Missing name for job
repository "photos" {
  tool     = "restic"
  location = "/srv/restic/photos"
}
job { # <-- error
  repository = "photos"
  command    = ["restic", "backup", "/data"]
}
