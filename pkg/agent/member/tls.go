package member

import (
	"crypto/tls"

	"github.com/berth-dev/berth/pkg/registration"
)

// tlsConfig reuses the SDK transport's TLS settings (AWS_CA_BUNDLE) for
// the websocket.
func tlsConfig(c *registration.Client) *tls.Config {
	if c.HTTPClient == nil {
		return nil
	}
	if tr := c.HTTPClient.GetTransport(); tr != nil && tr.TLSClientConfig != nil {
		return tr.TLSClientConfig.Clone()
	}
	return nil
}
