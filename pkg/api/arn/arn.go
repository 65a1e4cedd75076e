// Package arn is Berth's one reading of Amazon Resource Names. The
// arn:partition:service:region:account:resource syntax is parsed by the AWS
// SDK's parser; this package adds what Berth needs on top of it: the id at
// the end of a resource ("task/lab/0123..." → "0123...") and the split of a
// resource into its type and "/"-separated path, the layout ECS uses
// (<type>/<cluster>/<id>, or <type>/<id> for old-style ARNs).
//
// How ECS resources are named (which types exist, what their paths hold) is
// the endpoint's schema, in pkg/cluster/records. This package is imported by
// the agent (task ids, cluster names) and the endpoint alike; it imports no
// other Berth package.
package arn

import (
	"strings"

	awsarn "github.com/aws/aws-sdk-go-v2/aws/arn"
)

// ARN is a parsed Amazon Resource Name; String formats it back.
type ARN = awsarn.ARN

// Parse parses s. It fails when s does not start with "arn:" or has fewer
// than six colon-separated sections.
func Parse(s string) (ARN, error) { return awsarn.Parse(s) }

// ResourceID returns what follows the last "/" of s: the id of a task or a
// container instance, the name of a cluster or a service, whether s is an
// ARN or a bare reference. A string without "/" is returned whole.
func ResourceID(s string) string {
	return s[strings.LastIndexByte(s, '/')+1:]
}

// SplitResource splits an ARN's resource part at its slashes into its type
// and the path after it: "task/lab/0123" → "task", ["lab", "0123"];
// "cluster/lab" → "cluster", ["lab"]. A resource without "/" is all type.
func SplitResource(resource string) (typ string, path []string) {
	typ, rest, ok := strings.Cut(resource, "/")
	if !ok {
		return typ, nil
	}
	return typ, strings.Split(rest, "/")
}
