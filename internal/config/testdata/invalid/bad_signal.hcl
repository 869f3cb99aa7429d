# want: unknown signal "SIGTERMINATE"
lock {
  kill_signal = "SIGTERMINATE" # <-- error
}
