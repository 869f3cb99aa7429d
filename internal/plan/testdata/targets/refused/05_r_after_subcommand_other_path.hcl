# why: -r after the subcommand (restic accepts global flags there) names /srv/restic/other, not main
repository "main" {
  tool          = "restic"
  location      = "/srv/restic/main"
  password_file = "/secrets/restic-pass"
}

job "j" {
  repository = "main"
  command = [ # offending
    "restic", "backup",
    "-r", "/srv/restic/other",
    "/data",
  ]
}
