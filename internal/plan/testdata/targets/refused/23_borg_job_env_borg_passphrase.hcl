# why: job env sets BORG_PASSPHRASE: a secret in the config, overriding the repository's password_file
repository "b" {
  tool          = "borg"
  location      = "/srv/borg/b"
  password_file = "/secrets/borg-pass"
}

job "j" {
  repository = "b"
  command    = ["borg", "create", "::{now}", "/data"]
  env = { # offending
    BORG_FILES_CACHE_TTL = "30"
    BORG_PASSPHRASE      = "not-a-real-passphrase"
  }
}
