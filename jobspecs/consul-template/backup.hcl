# consul-template renders repolock's config and the repository password from
# Consul KV, then runs `repolock run` as its supervised child:
#
#   cd /run/repolock        # a private directory (0700) holding the .ctmpl files
#   REPOLOCK_SECRETS=/run/repolock consul-template -config backup.hcl
#
# When a rendered file changes during a run, consul-template stops repolock
# with kill_signal; repolock forwards it to restic's whole process group,
# releases the lock, records the interrupted run, and consul-template starts
# it again on the new config. When repolock exits, consul-template exits with
# its code (exec mode), so a timer or a Nomad periodic job can run this.
#
# The password is kept in KV under repolock/secrets/ (readable by this
# agent's token only); it reaches restic as a 0400 file, never by argv.

template {
  source      = "repolock.hcl.ctmpl"
  destination = "config.hcl"
}

template {
  source      = "restic-pass.ctmpl"
  destination = "restic-pass"
  perms       = 0400
}

exec {
  command = ["repolock", "run", "-config", "config.hcl", "backup"]
  # Above repolock's kill_timeout (15s) plus its release.
  kill_signal  = "SIGTERM"
  kill_timeout = "30s"
  splay        = "0s"
}
