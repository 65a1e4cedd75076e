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
		"rows": func(p *page, cluster, id string, rows any) rowsArg {
			return rowsArg{Page: p, Cluster: cluster, ID: id, Rows: rows}
		},
		// when shows a time in UTC to the second, "" for none.
		"when": func(t *time.Time) string {
			if t == nil || t.IsZero() {
				return ""
			}
			return t.UTC().Format("2006-01-02 15:04:05Z")
		},
	}
}

// rowsArg is what a list's table fragment (service-table, instance-table,
// task-table) renders: the page it is on (for the session and its
// controls), the cluster, the table's id and the rows.
type rowsArg struct {
	Page        *page
	Cluster, ID string
	Rows        any
}
