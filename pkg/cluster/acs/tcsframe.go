package acs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"net/url"

	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/cluster/records"
)

// The upstream Amazon ECS agent signs every TCS frame it sends: before the
// {"type","message"} JSON it writes the headers of a SigV4-signed GET of the
// session's URL whose body is that JSON, as net/http writes headers
// ("Name: value\r\n", names sorted), then an empty line:
//
//	Authorization: AWS4-HMAC-SHA256 Credential=.../ecs/aws4_request, SignedHeaders=host;x-amz-date, Signature=...
//	Host: 127.0.0.1:8443
//	X-Amz-Date: 20260701T120000Z
//	                                   (X-Amz-Security-Token when its credentials have one)
//	{"type":"PublishHealthRequest","message":{...}}
//
// (ecs-agent/tcs/client/client.go, signRequestFunc). Berth's agent sends the
// JSON alone; the session's handshake was signed either way.

// errUnsignedFrame marks a TCS frame whose header block is not a valid
// signature of its body by a key that may act for the instance.
var errUnsignedFrame = errors.New("TCS frame signature refused")

// telemetryFrame returns the JSON of one TCS frame. A frame that begins
// with '{' is the JSON itself. Otherwise its header block must verify as a
// SigV4 signature, for the session's URL, of the JSON that follows, by an
// admin key or by the key the instance is bound to.
func (s *Server) telemetryFrame(handshake *url.URL, inst *records.Instance, data []byte) ([]byte, error) {
	if len(data) > 0 && data[0] == '{' {
		return data, nil
	}
	br := bufio.NewReader(bytes.NewReader(data))
	hdr, err := textproto.NewReader(br).ReadMIMEHeader()
	if err != nil {
		return nil, fmt.Errorf("%w: read the header block: %w", errUnsignedFrame, err)
	}
	body, err := io.ReadAll(br)
	if err != nil {
		return nil, fmt.Errorf("%w: read the body: %w", errUnsignedFrame, err)
	}
	u := *handshake
	req := &http.Request{Method: http.MethodGet, URL: &u, Host: hdr.Get("Host"), Header: http.Header(hdr), ContentLength: -1}
	key, err := s.verify(req, body)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errUnsignedFrame, err)
	}
	if key.Role == auth.RoleAgent && key.AccessKeyID != inst.AgentKeyID {
		return nil, fmt.Errorf("%w: key %s is not bound to container instance %s", errUnsignedFrame, key.AccessKeyID, *inst.Instance.ContainerInstanceArn)
	}
	return body, nil
}
