package registration

import (
	"errors"
	"fmt"
	"strings"

	smithy "github.com/aws/smithy-go"
)

// TerminalError is a failure that retrying cannot fix: the cluster does not
// exist, the credentials are refused, the instance was deregistered. cmd/agent
// exits with code 5 on it (systemd then does not restart the agent).
type TerminalError struct {
	// Op is what was being done.
	Op string
	// Err is the cause.
	Err error
	// Hint says what the operator should fix.
	Hint string
}

// Error reads "op: cause (hint)".
func (e *TerminalError) Error() string {
	msg := e.Op + ": " + e.Err.Error()
	if e.Hint != "" {
		msg += " (" + e.Hint + ")"
	}
	return msg
}

// Unwrap returns the cause.
func (e *TerminalError) Unwrap() error { return e.Err }

// Terminal reports true: see cmd/agent's exit codes.
func (e *TerminalError) Terminal() bool { return true }

// ErrInactiveInstance is wrapped when the endpoint says the container
// instance was deregistered; the ACS session stops reconnecting.
var ErrInactiveInstance = errors.New("container instance is inactive (deregistered)")

// apiCode returns the AWS error code of err ("" when err is not an API error).
func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// rejected reports whether the endpoint refused the request itself, so that
// sending it again unchanged cannot succeed (as opposed to throttling, a
// server error or an unreachable endpoint).
func rejected(err error) bool {
	switch apiCode(err) {
	case "", "ServerException", "ThrottlingException", "ThrottlingExceptionV2", "RequestLimitExceeded",
		"ServiceUnavailable", "ServiceUnavailableException", "InternalFailure", "InternalError", "RequestTimeout",
		"RequestTimeoutException", "RequestExpired", "SlowDown", "TooManyRequestsException":
		return false
	}
	return true
}

// credentialsRejected reports whether err is the endpoint refusing who we are.
func credentialsRejected(err error) bool {
	switch apiCode(err) {
	case "UnrecognizedClientException", "InvalidSignatureException", "IncompleteSignature",
		"MissingAuthenticationToken", "AccessDeniedException", "InvalidClientTokenId",
		"SignatureDoesNotMatch", "ExpiredTokenException":
		return true
	}
	return false
}

// noCredentials reports whether the SDK found no credentials at all.
func noCredentials(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "failed to retrieve credentials") || strings.Contains(msg, "no EC2 IMDS role found") ||
		strings.Contains(msg, "failed to refresh cached credentials")
}

// registerTerminal turns a refused RegisterContainerInstance into a
// TerminalError with a hint, or returns nil for errors worth retrying.
func registerTerminal(err error, cluster, storedARN string) *TerminalError {
	const op = "register container instance"
	switch code := apiCode(err); {
	case code == "ClusterNotFoundException":
		return &TerminalError{Op: op, Err: err, Hint: fmt.Sprintf(
			"cluster %q does not exist: create it (aws ecs create-cluster --cluster-name %s) or set ECS_CLUSTER to an existing cluster", cluster, cluster)}
	case credentialsRejected(err):
		return &TerminalError{Op: op, Err: err, Hint: "the endpoint refused the agent's credentials: " + credentialsHint()}
	case code == "InvalidParameterException" && storedARN != "" && strings.Contains(err.Error(), "not registered"):
		return &TerminalError{Op: op, Err: err, Hint: fmt.Sprintf(
			"the cluster no longer has the container instance %s stored in ECS_DATADIR (it was deregistered, or the endpoint's data was reset); stop the agent, stop its containers and move ECS_DATADIR aside to register as a new instance", storedARN)}
	case rejected(err):
		return &TerminalError{Op: op, Err: err, Hint: "the endpoint rejected the registration request; check ECS_CLUSTER, ECS_INSTANCE_ATTRIBUTES and ECS_CONTAINER_INSTANCE_TAGS"}
	case code == "" && noCredentials(err):
		return &TerminalError{Op: op, Err: err, Hint: credentialsHint()}
	}
	return nil
}
