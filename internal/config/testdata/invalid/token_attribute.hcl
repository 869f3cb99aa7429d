# want: Use token_file
consul {
  address = "127.0.0.1:8500"
  token   = "d3b07384-d113-4ec6-a358-b0a5c6a3e1f1" # <-- error
}
