#!/bin/sh
# Makes the image generic before Packer saves it: no build account, no
# machine identity, no cloud-init state, so every instance boots fresh and
# reads its own user data. Run as root by Packer, last.
set -eu

apt-get clean
rm -rf /var/lib/apt/lists/*

# The session Packer uses is still open, so the account is locked rather
# than deleted, and loses its sudo rule.
passwd --lock packer
usermod --expiredate 1 packer
rm -f /etc/sudoers.d/90-cloud-init-users

# Nothing of the agent's state may be baked in: each instance registers as
# itself.
rm -rf /var/lib/berth/*

cloud-init clean --logs --machine-id --seed
rm -f /etc/ssh/ssh_host_*
sync
