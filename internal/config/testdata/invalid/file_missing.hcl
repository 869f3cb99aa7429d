# want: cannot read "does-not-exist.txt": no such file
repository "photos" {
  tool          = "restic"
  location      = trimspace(file("does-not-exist.txt")) # <-- error
}
