# want: not a valid KV prefix
consul {
  prefix = "/repolock/" # <-- error
}
