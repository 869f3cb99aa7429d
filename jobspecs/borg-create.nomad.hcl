# Nightly `borg create` under repolock. borg 1.x lets one writer use a
# repository at a time, so repolock holds its lock exclusively.
#
#   nomad var put nomad/jobs/borg-create passphrase=…
#   nomad job run -var 'repository=backup@nas:/srv/borg/photos' \
#                 -var 'paths=["/data/photos"]' borg-create.nomad.hcl

variable "repository" {
  type        = string
  description = "borg repository location, as borg spells it"
}

variable "paths" {
  type = list(string)
}

variable "schedule" {
  type    = string
  default = "15 1 * * *"
}

variable "repolock" {
  type    = string
  default = "/usr/local/bin/repolock"
}

variable "borg" {
  type    = string
  default = "borg"
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

job "borg-create" {
  type        = "batch"
  datacenters = var.datacenters

  periodic {
    crons            = [var.schedule]
    prohibit_overlap = true
  }

  group "create" {
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

    task "create" {
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
        args    = ["run", "-config", "${NOMAD_TASK_DIR}/repolock.hcl", "-log-json", "create"]
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
        # borg keeps its cache and config below the task's own directory.
        BORG_BASE_DIR = "${NOMAD_TASK_DIR}/borg"
      }

      # borg reads the passphrase through BORG_PASSCOMMAND (a cat of this file).
      # The Consul token for repolock, from the job's Nomad Variable
      # (nomad var put nomad/jobs/borg-create … consul_token=…); empty when the
      # Variable has none, for a Consul without ACLs. On Nomad 1.7+ with
      # Consul workload identity, drop this block: Nomad writes the file.
      template {
        destination = "secrets/consul_token"
        perms       = "0400"
        data        = "{{ with nomadVar \"nomad/jobs/borg-create\" }}{{ range $k, $v := . }}{{ if eq $k \"consul_token\" }}{{ $v }}{{ end }}{{ end }}{{ end }}"
      }

      template {
        destination = "secrets/borg-pass"
        perms       = "0400"
        data        = "{{ with nomadVar \"nomad/jobs/borg-create\" }}{{ .passphrase }}{{ end }}"
      }

      template {
        destination = "local/repolock.hcl"
        data        = <<-EOT
          consul {
            datacenter = "${var.lock_datacenter}"
          }
          lock {
            wait         = "6h"
            on_busy      = "skip"
            kill_timeout = "15s"
          }
          repository "repo" {
            tool          = "borg"
            location      = "${var.repository}"
            password_file = "{{ env "NOMAD_SECRETS_DIR" }}/borg-pass"
            # borg 1.x locks say nothing about staleness across hosts: break
            # them only if every borg of this repository runs under repolock.
            unlock_native = "all"
          }
          job "create" {
            repository = "repo"
            command    = ${jsonencode(concat([var.borg, "create", "::{hostname}-{now:%Y-%m-%dT%H:%M:%S}"], var.paths))}
          }
        EOT
      }
    }
  }
}
