package engine

import (
	"fmt"
	"slices"
	"strings"

	"github.com/berth-dev/berth/pkg/container"
)

// Security is ECS_APPARMOR_CAPABLE and ECS_SELINUX_CAPABLE: they allow
// apparmor: and label: dockerSecurityOptions; without them a task naming
// one is stopped with a reason naming it.
type Security struct {
	AppArmorCapable bool
	SELinuxCapable  bool
}

// checkSecurityOptions returns why a container's apparmor: or label:
// dockerSecurityOptions cannot run on this instance (ECS_APPARMOR_CAPABLE,
// ECS_SELINUX_CAPABLE not set), or "". It runs once, before the task is
// admitted.
func (e *Engine) checkSecurityOptions(def *TaskDef) string {
	for _, c := range def.Containers {
		if p := c.Spec.AppArmorProfile; p != "" && !e.opts.Security.AppArmorCapable {
			return fmt.Sprintf("container %s: dockerSecurityOptions apparmor:%s: this instance is not AppArmor capable (ECS_APPARMOR_CAPABLE=false)", c.Name, p)
		}
		if o := c.Spec.SELinuxOptions; len(o) > 0 && !e.opts.Security.SELinuxCapable {
			return fmt.Sprintf("container %s: dockerSecurityOptions label:%s: this instance is not SELinux capable (ECS_SELINUX_CAPABLE=false)", c.Name, o[0])
		}
	}
	return ""
}

// selinuxLabelKeys are the keys of Docker's "label:" options.
var selinuxLabelKeys = []string{"user", "role", "type", "level", "filetype"}

// readSecurityOptions reads a container's dockerSecurityOptions as Docker
// does ("key:value" or "key=value"): no-new-privileges, apparmor:PROFILE and
// label:OPTION. Whether the instance may honour apparmor and label is
// checked when the task starts (Engine.checkSecurityOptions); anything else
// is refused by name.
func readSecurityOptions(opts []string, spec *container.Spec) error {
	for _, o := range opts {
		key, value, _ := strings.Cut(o, ":")
		if k, v, ok := strings.Cut(o, "="); ok && !strings.Contains(k, ":") {
			key, value = k, v
		}
		switch key {
		case "no-new-privileges":
			switch value {
			case "", "true":
				spec.NoNewPrivileges = true
			case "false":
				spec.NoNewPrivileges = false
			default:
				return fmt.Errorf("dockerSecurityOptions %q: no-new-privileges takes true or false", o)
			}
		case "apparmor":
			if value == "" {
				return fmt.Errorf("dockerSecurityOptions %q: apparmor needs a profile name", o)
			}
			spec.AppArmorProfile = value
		case "label":
			k, _, hasValue := strings.Cut(value, ":")
			if !(value == "disable" || hasValue && slices.Contains(selinuxLabelKeys, k)) {
				return fmt.Errorf("dockerSecurityOptions %q: a label option is disable or user:, role:, type:, level: or filetype: with a value", o)
			}
			spec.SELinuxOptions = append(spec.SELinuxOptions, value)
		default:
			return fmt.Errorf("unsupported dockerSecurityOptions %q (Berth honours no-new-privileges, apparmor: and label:)", o)
		}
	}
	return nil
}
