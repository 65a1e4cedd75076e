# Packer recipe of a Debian 12 machine image with berth-agent installed.
# One image serves any cluster: the agent's /etc/ecs/ecs.config comes from
# the instance's user data at first boot (user-data.example.yaml); without
# it the agent stays stopped. See docs/install.md ("Machine image").
#
#   make package
#   packer build -var agent_deb=dist/berth-agent_<version>_amd64.deb packaging/image
#
# Written for Debian's packer 1.6 (the qemu builder is built in there; newer
# Packer needs `packer plugins install github.com/hashicorp/qemu`).

variable "agent_deb" {
  type        = string
  description = "Path of the berth-agent .deb to install (built by `make package`)."
}

variable "image_url" {
  type        = string
  default     = "https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-genericcloud-amd64.qcow2"
  description = "Debian 12 cloud image the machine image starts from."
}

variable "image_checksum" {
  type        = string
  default     = "file:https://cloud.debian.org/images/cloud/bookworm/latest/SHA512SUMS"
  description = "Checksum of image_url, or a file: URL of a checksum list."
}

variable "output_directory" {
  type    = string
  default = "output-berth-agent"
}

variable "accelerator" {
  type        = string
  default     = "kvm"
  description = "qemu accelerator: kvm, or tcg where /dev/kvm is missing (slow)."
}

source "qemu" "debian12" {
  iso_url          = var.image_url
  iso_checksum     = var.image_checksum
  disk_image       = true
  format           = "qcow2"
  disk_size        = "8G"
  disk_compression = true
  accelerator      = var.accelerator
  headless         = true
  memory           = 2048
  cpus             = 2
  output_directory = var.output_directory
  vm_name          = "berth-agent.qcow2"

  # The cloud image reads its build-time user (packer) from a NoCloud seed
  # that Packer serves over HTTP; the user is locked at the end of the build.
  http_directory = "${path.root}/http"
  qemuargs = [
    ["-smbios", "type=1,serial=ds=nocloud-net;s=http://{{ .HTTPIP }}:{{ .HTTPPort }}/"],
  ]

  communicator     = "ssh"
  ssh_username     = "packer"
  ssh_password     = "packer"
  ssh_timeout      = "15m"
  shutdown_command = "sudo shutdown -P now"
}

build {
  sources = ["source.qemu.debian12"]

  provisioner "file" {
    source      = var.agent_deb
    destination = "/tmp/berth-agent.deb"
  }

  provisioner "file" {
    source      = "${path.root}/berth-agent-cloud-init.conf"
    destination = "/tmp/berth-agent-cloud-init.conf"
  }

  provisioner "shell" {
    execute_command = "sudo sh -eu '{{ .Path }}'"
    scripts = [
      "${path.root}/scripts/install.sh",
      "${path.root}/scripts/cleanup.sh",
    ]
  }
}
