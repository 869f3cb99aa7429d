# why: --repo=VALUE names /srv/restic/other, not the locked repository main (/srv/restic/main)
repository "main" {
  tool          = "restic"
  location      = "/srv/restic/main"
  password_file = "/secrets/restic-pass"
}

job "j" {
  repository = "main"
  command    = ["restic", "--repo=/srv/restic/other", "backup", "/data"] # offending
}
