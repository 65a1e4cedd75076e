package logstore

import (
	"regexp"
	"strings"
)

// groupNameRE is CloudWatch Logs' pattern for log group names.
var groupNameRE = regexp.MustCompile(`^[\.\-_/#A-Za-z0-9]+$`)

// identifierRE is its pattern for logGroupIdentifier: a name or an ARN
// without the trailing ":*" that DescribeLogGroups' arn member carries.
var identifierRE = regexp.MustCompile(`^[\w#+=/:,.@-]+$`)

// groupARNPrefix is the ARN of this endpoint's log groups up to the name.
func (s *Store) groupARNPrefix() string {
	return "arn:aws:logs:" + s.region + ":" + s.acct + ":log-group:"
}

// groupOfIdentifier returns the group a logGroupIdentifier (name or ARN)
// names; member is the request member, for the error. An ARN of another
// region or account names no group here.
func (s *Store) groupOfIdentifier(member, id string) (string, error) {
	if len(id) > 2048 || !identifierRE.MatchString(id) {
		return "", apiErr(errInvalid, "1 validation error detected: Value '%s' at '%s' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w#+=/:,.@-]*", id, member)
	}
	if !strings.HasPrefix(id, "arn:") {
		return id, nil
	}
	name, ok := strings.CutPrefix(id, s.groupARNPrefix())
	if !ok || strings.Contains(name, ":") {
		return "", apiErr(errNotFound, "The specified log group does not exist.")
	}
	return name, nil
}

// resolveGroup returns the group named by exactly one of logGroupName and
// logGroupIdentifier, as GetLogEvents, FilterLogEvents and
// DescribeLogStreams take it.
func (s *Store) resolveGroup(name, identifier string) (string, error) {
	switch {
	case name != "" && identifier != "":
		return "", apiErr(errInvalid, "LogGroupName and LogGroupIdentifier are mutually exclusive parameters.")
	case identifier != "":
		return s.groupOfIdentifier("logGroupIdentifier", identifier)
	case name == "":
		return "", apiErr(errInvalid, "Either logGroupName or logGroupIdentifier must be specified.")
	}
	return name, nil
}

// groupOfResourceARN returns the log group a tagging resourceArn names:
// arn:aws:logs:<region>:<account>:log-group:<name>, with or without the
// trailing ":*". Other resources cannot be tagged here.
func (s *Store) groupOfResourceARN(arn string) (string, error) {
	if arn == "" {
		return "", apiErr(errInvalid, "1 validation error detected: Value at 'resourceArn' failed to satisfy constraint: Member must not be null")
	}
	rest, ok := strings.CutPrefix(arn, "arn:aws:logs:")
	if !ok {
		return "", apiErr(errInvalid, "resourceArn %s is not a CloudWatch Logs ARN", arn)
	}
	name, ok := strings.CutPrefix(arn, s.groupARNPrefix())
	if !ok {
		if strings.Contains(rest, ":log-group:") {
			return "", apiErr(errNotFound, "The specified log group does not exist.")
		}
		return "", apiErr(errInvalid, "resourceArn %s: only log groups can be tagged on this endpoint", arn)
	}
	name = strings.TrimSuffix(name, ":*")
	if strings.Contains(name, ":") {
		return "", apiErr(errInvalid, "resourceArn %s: only log groups can be tagged on this endpoint (not log streams)", arn)
	}
	return name, nil
}
