package registration

import "strings"

func splitN(s, sep string, n int) []string { return strings.SplitN(s, sep, n) }

// lastSegment returns what follows the last "/" (the name in an ARN).
func lastSegment(s string) string {
	if i := strings.LastIndex(s, "/"); i >= 0 {
		return s[i+1:]
	}
	return s
}
