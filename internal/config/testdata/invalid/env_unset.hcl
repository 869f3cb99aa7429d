# want: environment variable "REPOLOCK_TEST_UNSET_VARIABLE" is not set and no default was given
repository "photos" {
  tool     = "restic"
  location = env("REPOLOCK_TEST_UNSET_VARIABLE") # <-- error
}
