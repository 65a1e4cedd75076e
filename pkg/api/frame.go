package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
)

// Frame types: the "type" member of an ACS frame, which is the name of the
// message's shape in the ACS model.
const (
	TypePayloadMessage                         = "PayloadMessage"
	TypeAckRequest                             = "AckRequest"
	TypeHeartbeatMessage                       = "HeartbeatMessage"
	TypeHeartbeatAckRequest                    = "HeartbeatAckRequest"
	TypeIAMRoleCredentialsMessage              = "IAMRoleCredentialsMessage"
	TypeIAMRoleCredentialsAckRequest           = "IAMRoleCredentialsAckRequest"
	TypeCloseMessage                           = "CloseMessage"
	TypeAttachTaskNetworkInterfacesMessage     = "AttachTaskNetworkInterfacesMessage"
	TypeAttachInstanceNetworkInterfacesMessage = "AttachInstanceNetworkInterfacesMessage"
	TypeConfirmAttachmentMessage               = "ConfirmAttachmentMessage"
	TypeTaskManifestMessage                    = "TaskManifestMessage"
	TypeTaskStopVerificationMessage            = "TaskStopVerificationMessage"
	TypeTaskStopVerificationAck                = "TaskStopVerificationAck"
	TypePerformUpdateMessage                   = "PerformUpdateMessage"
	TypeStageUpdateMessage                     = "StageUpdateMessage"
	TypeNackRequest                            = "NackRequest"
	TypePollRequest                            = "PollRequest"

	// Error frames. They all carry one member, "message".
	TypeErrorMessage              = "ErrorMessage"
	TypeServerException           = "ServerException"
	TypeBadRequestException       = "BadRequestException"
	TypeInvalidClusterException   = "InvalidClusterException"
	TypeInvalidInstanceException  = "InvalidInstanceException"
	TypeInactiveInstanceException = "InactiveInstanceException"
	TypeAccessDeniedException     = "AccessDeniedException"
)

// Frame is one ACS message. Every message type in this package implements it;
// FrameType returns the "type" member written on the wire.
type Frame interface {
	FrameType() string
}

// envelope is the wire form of every ACS frame.
type envelope struct {
	Type    string          `json:"type"`
	Message json.RawMessage `json:"message"`
}

// UnknownFrame is what DecodeFrame returns for a frame whose type this package
// does not know. The receiver logs and ignores it; the raw message is kept so
// that it can be logged or re-encoded unchanged.
type UnknownFrame struct {
	Type    string
	Message json.RawMessage
}

// FrameType implements Frame.
func (f *UnknownFrame) FrameType() string { return f.Type }

// ErrorFrame is any of the ACS error frames (ErrorMessage, ServerException,
// BadRequestException, InvalidClusterException, InvalidInstanceException,
// InactiveInstanceException, AccessDeniedException). Type says which.
type ErrorFrame struct {
	Type    string `json:"-"`
	Message string `json:"message,omitempty"`
}

// FrameType implements Frame.
func (f *ErrorFrame) FrameType() string { return f.Type }

// Error makes an error frame usable as a Go error.
func (f *ErrorFrame) Error() string { return f.Type + ": " + f.Message }

// ErrMalformedFrame is wrapped by DecodeFrame when the bytes are not an ACS
// frame at all (not JSON, no type, or a message that does not fit its type).
var ErrMalformedFrame = errors.New("malformed ACS frame")

// newFrame returns an empty message of the given type, or nil when the type
// is unknown.
func newFrame(typ string) Frame {
	switch typ {
	case TypePayloadMessage:
		return &PayloadMessage{}
	case TypeAckRequest:
		return &AckRequest{}
	case TypeHeartbeatMessage:
		return &HeartbeatMessage{}
	case TypeHeartbeatAckRequest:
		return &HeartbeatAckRequest{}
	case TypeIAMRoleCredentialsMessage:
		return &IAMRoleCredentialsMessage{}
	case TypeIAMRoleCredentialsAckRequest:
		return &IAMRoleCredentialsAckRequest{}
	case TypeCloseMessage:
		return &CloseMessage{}
	case TypeAttachTaskNetworkInterfacesMessage:
		return &AttachTaskNetworkInterfacesMessage{}
	case TypeAttachInstanceNetworkInterfacesMessage:
		return &AttachInstanceNetworkInterfacesMessage{}
	case TypeConfirmAttachmentMessage:
		return &ConfirmAttachmentMessage{}
	case TypeTaskManifestMessage:
		return &TaskManifestMessage{}
	case TypeTaskStopVerificationMessage:
		return &TaskStopVerificationMessage{}
	case TypeTaskStopVerificationAck:
		return &TaskStopVerificationAck{}
	case TypePerformUpdateMessage:
		return &PerformUpdateMessage{}
	case TypeStageUpdateMessage:
		return &StageUpdateMessage{}
	case TypeNackRequest:
		return &NackRequest{}
	case TypePollRequest:
		return &PollRequest{}
	case TypePublishHealthRequest:
		return &PublishHealthRequest{}
	case TypeAckPublishHealth:
		return &AckPublishHealth{}
	case TypeAckPublishMetric:
		return &AckPublishMetric{}
	case TypeErrorMessage, TypeServerException, TypeBadRequestException,
		TypeInvalidClusterException, TypeInvalidInstanceException,
		TypeInactiveInstanceException, TypeAccessDeniedException:
		return &ErrorFrame{Type: typ}
	}
	return nil
}

// DecodeFrame decodes one ACS frame into its typed message (a pointer, e.g.
// *PayloadMessage). A frame of an unknown type is not an error: it comes back
// as *UnknownFrame so that the session can log it and carry on. Errors wrap
// ErrMalformedFrame.
func DecodeFrame(data []byte) (Frame, error) {
	var env envelope
	if err := json.Unmarshal(data, &env); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedFrame, err)
	}
	if env.Type == "" {
		return nil, fmt.Errorf("%w: no type", ErrMalformedFrame)
	}
	f := newFrame(env.Type)
	if f == nil {
		return &UnknownFrame{Type: env.Type, Message: bytes.Clone(env.Message)}, nil
	}
	msg := bytes.TrimSpace(env.Message)
	if len(msg) == 0 || bytes.Equal(msg, []byte("null")) {
		return nil, fmt.Errorf("%w: %s without a message", ErrMalformedFrame, env.Type)
	}
	if err := json.Unmarshal(msg, f); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrMalformedFrame, env.Type, err)
	}
	return f, nil
}

// EncodeFrame writes f as an ACS frame: {"type":"<FrameType>","message":{...}}.
func EncodeFrame(f Frame) ([]byte, error) {
	if f == nil {
		return nil, errors.New("encode ACS frame: nil frame")
	}
	if v := reflect.ValueOf(f); v.Kind() == reflect.Pointer && v.IsNil() {
		return nil, fmt.Errorf("encode ACS frame %s: nil message", f.FrameType())
	}
	typ := f.FrameType()
	if typ == "" {
		return nil, errors.New("encode ACS frame: empty type")
	}
	var msg json.RawMessage
	if u, ok := f.(*UnknownFrame); ok {
		msg = u.Message
		if len(msg) == 0 {
			msg = json.RawMessage("{}")
		}
	} else {
		b, err := json.Marshal(f)
		if err != nil {
			return nil, fmt.Errorf("encode ACS frame %s: %w", typ, err)
		}
		msg = b
	}
	out, err := json.Marshal(envelope{Type: typ, Message: msg})
	if err != nil {
		return nil, fmt.Errorf("encode ACS frame %s: %w", typ, err)
	}
	return out, nil
}
