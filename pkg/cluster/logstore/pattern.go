package logstore

import "strings"

// compilePattern supports CloudWatch's simple term patterns: terms that
// must all appear (case-sensitive), "quoted phrases", ?term alternatives
// (any of them) and -term exclusions. An empty pattern matches everything;
// JSON and space-delimited patterns ({...}, [...]) are refused.
func compilePattern(p string) (func(string) bool, error) {
	p = strings.TrimSpace(p)
	if p == "" || p == `""` {
		return func(string) bool { return true }, nil
	}
	if strings.HasPrefix(p, "{") || strings.HasPrefix(p, "[") || strings.HasPrefix(p, "%") {
		return nil, apiErr(errInvalid, "filter pattern %q: only term patterns are supported by this endpoint", p)
	}
	var all, anyOf, none []string
	for rest := p; rest != ""; rest = strings.TrimSpace(rest) {
		prefix := byte(0)
		if rest[0] == '?' || rest[0] == '-' {
			prefix, rest = rest[0], rest[1:]
		}
		var term string
		if strings.HasPrefix(rest, `"`) {
			end := strings.Index(rest[1:], `"`)
			if end < 0 {
				return nil, apiErr(errInvalid, "filter pattern %q: unterminated quote", p)
			}
			term, rest = rest[1:1+end], rest[2+end:]
		} else {
			term, rest, _ = strings.Cut(rest, " ")
		}
		switch prefix {
		case '?':
			anyOf = append(anyOf, term)
		case '-':
			none = append(none, term)
		default:
			all = append(all, term)
		}
	}
	return func(m string) bool {
		for _, t := range all {
			if !strings.Contains(m, t) {
				return false
			}
		}
		for _, t := range none {
			if strings.Contains(m, t) {
				return false
			}
		}
		if len(anyOf) == 0 {
			return true
		}
		for _, t := range anyOf {
			if strings.Contains(m, t) {
				return true
			}
		}
		return false
	}, nil
}
