# Smallest useful configuration: everything else takes its default.
repository "photos" {
  tool     = "restic"
  location = "sftp:backup@nas:/srv/restic/photos"
}

job "photos-nightly" {
  repository = "photos"
  command    = ["restic", "backup", "/data/photos"]
}
