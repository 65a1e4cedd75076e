package logship

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"text/template"
)

// tagData is what Docker's tag templates may reference.
type tagData struct {
	ID, FullID, Name, ImageName, ImageFullID, DaemonName string
	TaskID, TaskARN, Family, Cluster                     string
}

// renderTag expands a Docker tag template ("{{.Name}}/{{.ID}}"); def is
// used when the option is unset.
func renderTag(tmpl, def string, info ContainerInfo) (string, error) {
	if tmpl == "" {
		tmpl = def
	}
	t, err := template.New("tag").Option("missingkey=error").Parse(tmpl)
	if err != nil {
		return "", fmt.Errorf("log opt \"tag\": %w: %w", err, ErrInvalidOption)
	}
	id := info.ID
	if len(id) > 12 {
		id = id[:12]
	}
	var b strings.Builder
	if err := t.Execute(&b, tagData{ID: id, FullID: info.ID, Name: info.Name, ImageName: info.ImageName,
		DaemonName: "berth", TaskID: info.TaskID, TaskARN: info.TaskARN, Family: info.TaskFamily, Cluster: info.Cluster}); err != nil {
		return "", fmt.Errorf("log opt \"tag\": %w: %w", err, ErrInvalidOption)
	}
	return b.String(), nil
}

// extraAttrs returns the labels and env vars Docker's labels, env and
// env-regex (and labels-regex) options select, sorted by key.
func extraAttrs(opts map[string]string, info ContainerInfo) [][2]string {
	out := map[string]string{}
	if v := opts["labels"]; v != "" {
		for _, k := range strings.Split(v, ",") {
			if val, ok := info.Labels[k]; ok {
				out[k] = val
			}
		}
	}
	if v := opts["labels-regex"]; v != "" {
		if re, err := regexp.Compile(v); err == nil {
			for k, val := range info.Labels {
				if re.MatchString(k) {
					out[k] = val
				}
			}
		}
	}
	envKeys := strings.Split(opts["env"], ",")
	var envRE *regexp.Regexp
	if v := opts["env-regex"]; v != "" {
		envRE, _ = regexp.Compile(v)
	}
	for _, kv := range info.Env {
		k, val, _ := strings.Cut(kv, "=")
		if (opts["env"] != "" && slices.Contains(envKeys, k)) || (envRE != nil && envRE.MatchString(k)) {
			out[k] = val
		}
	}
	keys := make([]string, 0, len(out))
	for k := range out {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	res := make([][2]string, len(keys))
	for i, k := range keys {
		res[i] = [2]string{k, out[k]}
	}
	return res
}
