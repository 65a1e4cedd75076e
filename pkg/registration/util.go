package registration

import "strings"

// lastSegment returns what follows the last "/" (the name in an ARN).
func lastSegment(s string) string {
	if i := strings.LastIndex(s, "/"); i >= 0 {
		return s[i+1:]
	}
	return s
}
