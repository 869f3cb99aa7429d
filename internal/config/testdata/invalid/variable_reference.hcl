# want: Variables not allowed
repository "photos" {
  tool     = "restic"
  location = var.location # <-- error
}
