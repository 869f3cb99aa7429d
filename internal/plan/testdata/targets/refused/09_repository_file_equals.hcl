# why: --repository-file=VALUE makes restic read the repository from a file at run time; it is refused outright
repository "main" {
  tool          = "restic"
  location      = "/srv/restic/main"
  password_file = "/secrets/restic-pass"
}

job "j" {
  repository = "main"
  command    = ["restic", "--repository-file=/etc/restic/repo", "backup", "/data"] # offending
}
