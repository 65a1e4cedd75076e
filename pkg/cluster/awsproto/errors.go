package awsproto

import (
	"fmt"
	"net/http"
)

// Error is an error the client sees with its AWS type (the error code), an
// HTTP status and a message. Handlers return it (wrapped or not); any other
// error is answered as the API's internal error, with the details only in
// the log.
type Error struct {
	Type    string
	Status  int // zero means 400
	Message string
	// QueryCode is the error's code in the Query protocol, when the API
	// also speaks it and the code differs from Type
	// (InvalidParameterValueException is InvalidParameterValue).
	QueryCode string
}

// Error returns "Type: message".
func (e *Error) Error() string { return e.Type + ": " + e.Message }

// ClientError is an Error of type typ with HTTP status 400.
func ClientError(typ, format string, args ...any) *Error {
	return &Error{Type: typ, Status: http.StatusBadRequest, Message: fmt.Sprintf(format, args...)}
}

// status is e's HTTP status, 400 when unset.
func (e *Error) status() int {
	if e.Status == 0 {
		return http.StatusBadRequest
	}
	return e.Status
}
