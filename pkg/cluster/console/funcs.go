package console

import (
	"html/template"
	"strings"
	"time"
)

// templateFuncs are the templates' helpers; they hold no state.
func templateFuncs() template.FuncMap {
	return template.FuncMap{
		"join":     strings.Join,
		"pageSize": func() int { return pageSize },
		// when shows a time in UTC to the second, "" for none.
		"when": func(t *time.Time) string {
			if t == nil || t.IsZero() {
				return ""
			}
			return t.UTC().Format("2006-01-02 15:04:05Z")
		},
	}
}
