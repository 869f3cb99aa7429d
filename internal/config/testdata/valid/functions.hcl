# The convenience functions, with values that do not depend on the machine.
repository "photos" {
  tool          = lower("RESTIC")
  location      = format("sftp:%s@%s:%s", "backup", "nas", "/srv/restic/photos")
  password_file = env("REPOLOCK_TEST_SURELY_UNSET", "/secrets/restic-pass")
  lock_key      = trimspace("  photos  ")
  env           = { RESTIC_HOST = upper("nas") }
}

job "photos-nightly" {
  repository = "photos"
  command    = ["sh", "-c", join(" ", ["restic", "backup", "/data/photos"])]
}
