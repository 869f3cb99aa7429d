# want: Duplicate consul block
consul {
  prefix = "a"
}
consul { # <-- error
  prefix = "b"
}
