package config

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// Setting is one key's effective value and where it came from.
type Setting struct {
	Key Key
	// Value is the value in environment syntax, or "<redacted>" for a set
	// secret.
	Value  string
	Source Source
}

// Settings lists every key's effective value in key-table order, with
// secrets redacted.
func (c *Config) Settings() []Setting {
	keys := Keys()
	out := make([]Setting, 0, len(keys))
	for _, k := range keys {
		v := k.get(c)
		if k.Secret && v != "" {
			v = Redacted
		}
		out = append(out, Setting{Key: k, Value: v, Source: c.sources[k.Name]})
	}
	return out
}

// WriteSettings prints every key's effective value and source as an aligned
// table (KEY, VALUE, SOURCE); an empty value shows as "". Secrets are
// redacted.
func (c *Config) WriteSettings(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tVALUE\tSOURCE")
	for _, s := range c.Settings() {
		v := s.Value
		if v == "" {
			v = `""`
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Key.Name, v, s.Source)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write settings: %w", err)
	}
	return nil
}
