package config

import "strings"

// suggest returns the known key closest to an unknown name, or "" when none
// is close. Names are compared without their ECS_/BERTH_ prefix, so that
// ECS_CONTAINERD_ADDRESS suggests BERTH_CONTAINERD_ADDRESS. With toml set,
// name is a TOML name (an environment-style name is also recognised) and the
// suggestion is a TOML name.
func suggest(name string, keys []Key, toml bool) string {
	stem := tomlName(strings.ToUpper(name))
	best, bestDist := "", -1
	for _, k := range keys {
		d := editDistance(stem, k.TOMLName)
		if bestDist < 0 || d < bestDist {
			best, bestDist = k.Name, d
			if toml {
				best = k.TOMLName
			}
		}
	}
	// Allow roughly one typo per four characters, and at least two.
	limit := max(2, len(stem)/4)
	if bestDist < 0 || bestDist > limit {
		return ""
	}
	return best
}

// editDistance is the Levenshtein distance between a and b in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
