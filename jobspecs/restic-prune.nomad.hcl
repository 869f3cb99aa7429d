# Weekly `restic forget --prune` under repolock: a periodic batch job that
# holds the repository's lock exclusively, so it waits for running backups and
# they wait for it (repolock infers the mode from the command).
#
#   nomad var put nomad/jobs/restic-prune password=…
#   nomad job run -var 'repository=sftp:backup@nas:/srv/restic/photos' restic-prune.nomad.hcl

variable "repository" {
  type        = string
  description = "restic repository location, as restic spells it"
}

variable "keep" {
  type        = list(string)
  default     = ["--keep-daily", "7", "--keep-weekly", "5", "--keep-monthly", "12"]
  description = "restic forget's keep policy"
}

variable "schedule" {
  type    = string
  default = "0 4 * * 0"
}

variable "repolock" {
  type    = string
  default = "/usr/local/bin/repolock"
}

variable "restic" {
  type    = string
  default = "restic"
}

variable "consul_addr" {
  type    = string
  default = "127.0.0.1:8500"
}

variable "consul_cacert" {
  type        = string
  default     = ""
  description = "for an HTTPS agent (consul_addr = \"https://…\"): the CA file on the client that signed the agent's certificate"
}

variable "consul_client_cert" {
  type        = string
  default     = ""
  description = "for an agent with verify_incoming: repolock's client certificate and key files on the client (replaced on disk, they are read again for every new connection)"
}

variable "consul_client_key" {
  type    = string
  default = ""
}

variable "driver" {
  type        = string
  default     = "raw_exec"
  description = "\"raw_exec\", or \"exec\": the task in a chroot as exec_user, under cgroups (README \"The exec driver\")"
  validation {
    condition     = contains(["raw_exec", "exec"], var.driver)
    error_message = "The driver must be \"raw_exec\" or \"exec\"."
  }
}

variable "exec_user" {
  type        = string
  default     = "nobody"
  description = "the unprivileged user the task runs as under exec"
}

variable "host_volumes" {
  type        = map(string)
  default     = {}
  description = "under exec: client host volumes to mount, name = path in the task (the paths backed up, a local repository), e.g. { photos = \"/data/photos\" }"
}

variable "repolock_artifact" {
  type        = string
  default     = ""
  description = "a URL of a tar.gz with the repolock binary at its top, fetched into local/ and run from there instead of var.repolock"
}

variable "datacenters" {
  type    = list(string)
  default = ["*"]
}

variable "lock_datacenter" {
  type        = string
  default     = ""
  description = "the Consul datacenter whose servers hold the locks, for a repository that hosts in several datacenters write to (README \"Several datacenters\"); empty: the agent's own"
}

variable "unlock_native" {
  type    = string
  default = "all"
}

variable "lock_ttl" {
  type        = string
  default     = "30s"
  description = "the Consul session TTL of the prune's lock: after a hard kill the lock frees within about twice this; ttl/3 + lock_kill_timeout + ttl/10 must stay below it"
}

variable "lock_kill_timeout" {
  type        = string
  default     = "15s"
  description = "how long restic may take to stop after the kill signal, before SIGKILL"
}

job "restic-prune" {
  type        = "batch"
  datacenters = var.datacenters

  periodic {
    crons            = [var.schedule]
    prohibit_overlap = true
  }

  group "prune" {
    # The exit code is the verdict (see restic-backup.nomad.hcl).
    restart {
      attempts = 0
      mode     = "fail"
    }
    reschedule {
      attempts  = 0
      unlimited = false
    }

    # Under exec, a local repository (and the paths backed up) come into the
    # chroot as host volumes.
    dynamic "volume" {
      for_each = var.host_volumes
      labels   = [volume.key]
      content {
        type   = "host"
        source = volume.key
      }
    }

    task "prune" {
      driver = var.driver
      user   = var.driver == "exec" ? var.exec_user : ""

      dynamic "volume_mount" {
        for_each = var.host_volumes
        content {
          volume      = volume_mount.key
          destination = volume_mount.value
        }
      }

      dynamic "artifact" {
        for_each = var.repolock_artifact == "" ? [] : [var.repolock_artifact]
        content {
          source      = artifact.value
          destination = "local/"
        }
      }

      # A prune killed mid-run leaves an exclusive restic lock; repolock clears
      # it when restic dies by a signal, and the next run heals whatever is
      # left. The margin over repolock's kill_timeout lets it release first.
      kill_timeout = "30s"
      kill_signal  = "SIGINT"

      # The workload identity as a file, for repolock to read this task's
      # kill_timeout through the Task API and fit its own under it (with ACLs,
      # give the job's identity read-job). Never in the environment: restic
      # would inherit it.
      identity {
        file = true
      }

      config {
        command = var.repolock_artifact == "" ? var.repolock : "local/repolock"
        args    = ["run", "-config", "${NOMAD_TASK_DIR}/repolock.hcl", "-log-json", "prune"]
      }

      env {
        CONSUL_HTTP_ADDR = var.consul_addr
        PATH             = "/usr/local/bin:/usr/bin:/bin"
        # repolock's Consul credentials; none of them reaches the backup
        # command. The token is the file the template below renders.
        CONSUL_HTTP_TOKEN_FILE = "${NOMAD_SECRETS_DIR}/consul_token"
        CONSUL_CACERT          = var.consul_cacert
        CONSUL_CLIENT_CERT     = var.consul_client_cert
        CONSUL_CLIENT_KEY      = var.consul_client_key
      }

      # The Consul token for repolock, from the job's Nomad Variable
      # (nomad var put nomad/jobs/restic-prune … consul_token=…); empty when the
      # Variable has none, for a Consul without ACLs. On Nomad 1.7+ with
      # Consul workload identity, drop this block: Nomad writes the file.
      template {
        destination = "secrets/consul_token"
        perms       = "0400"
        data        = "{{ with nomadVar \"nomad/jobs/restic-prune\" }}{{ range $k, $v := . }}{{ if eq $k \"consul_token\" }}{{ $v }}{{ end }}{{ end }}{{ end }}"
      }

      template {
        destination = "secrets/restic-pass"
        perms       = "0400"
        data        = "{{ with nomadVar \"nomad/jobs/restic-prune\" }}{{ .password }}{{ end }}"
      }

      template {
        destination = "local/repolock.hcl"
        data        = <<-EOT
          consul {
            datacenter = "${var.lock_datacenter}"
          }
          lock {
            wait         = "12h"
            ttl          = "${var.lock_ttl}"
            kill_timeout = "${var.lock_kill_timeout}"
          }
          repository "repo" {
            tool          = "restic"
            location      = "${var.repository}"
            password_file = "{{ env "NOMAD_SECRETS_DIR" }}/restic-pass"
            unlock_native = "${var.unlock_native}"
            env           = { RESTIC_CACHE_DIR = "{{ env "NOMAD_TASK_DIR" }}/cache" }
          }
          job "prune" {
            repository = "repo"
            command    = ${jsonencode(concat([var.restic, "forget", "--prune"], var.keep))}
          }
        EOT
      }
    }
  }
}
