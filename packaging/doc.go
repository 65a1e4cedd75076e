// Package packaging holds no code: it is the home of the tests for Berth's
// install artefacts — the systemd units in systemd/, the nfpm configurations
// and maintainer scripts here, the machine image recipe in image/, the
// Vagrant lab in lab/ and every shell script in the repository. Nothing
// imports it. See docs/install.md.
package packaging
