package registration

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync/atomic"

	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// SplitEndpoints splits ECS_BACKEND_HOST into the endpoints it names:
// one URL, or several replicas of the cluster endpoint separated by
// commas. Each gets https:// when it names no scheme.
func SplitEndpoints(s string) []string {
	var out []string
	for _, e := range strings.Split(s, ",") {
		e = strings.TrimRight(strings.TrimSpace(e), "/")
		if e == "" {
			continue
		}
		if !strings.Contains(e, "://") {
			e = "https://" + e
		}
		out = append(out, e)
	}
	return out
}

// failover sends each API request to the endpoint in use and moves on to
// the next one in the list when a request could not be sent to it (the
// replica is down or unreachable); the SDK's retryer then sends the
// request again, to the next replica. ACS and TCS follow: they connect to
// where DiscoverPollEndpoint, answered by the replica in use, points.
//
// It runs per attempt, after the endpoint is resolved and before the
// request is signed, so the signature covers the replica's address.
type failover struct {
	endpoints []*url.URL
	cur       atomic.Int32
	logger    *slog.Logger
}

func newFailover(list []string, logger *slog.Logger) (*failover, error) {
	f := &failover{logger: logger}
	for _, e := range list {
		u, err := url.Parse(e)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("endpoint %q is not an http(s) URL", e)
		}
		f.endpoints = append(f.endpoints, u)
	}
	return f, nil
}

// ID names the middleware in the SDK's stack.
func (*failover) ID() string { return "BerthEndpointFailover" }

// add puts the failover into an operation's stack (ecs.Options.APIOptions).
func (f *failover) add(stack *middleware.Stack) error {
	return stack.Finalize.Insert(f, "ResolveEndpointV2", middleware.After)
}

// HandleFinalize points the request at the endpoint in use.
func (f *failover) HandleFinalize(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (
	middleware.FinalizeOutput, middleware.Metadata, error,
) {
	req, ok := in.Request.(*smithyhttp.Request)
	if !ok {
		return next.HandleFinalize(ctx, in)
	}
	i := f.cur.Load()
	u := f.endpoints[i]
	req.URL.Scheme, req.URL.Host, req.Host = u.Scheme, u.Host, ""
	out, md, err := next.HandleFinalize(ctx, in)
	var sendErr *smithyhttp.RequestSendError
	if errors.As(err, &sendErr) && ctx.Err() == nil {
		n := (i + 1) % int32(len(f.endpoints))
		if f.cur.CompareAndSwap(i, n) {
			f.logger.Warn("cluster endpoint unreachable: moving to the next one in ECS_BACKEND_HOST",
				"from", u.String(), "to", f.endpoints[n].String(), "err", err)
		}
	}
	return out, md, err
}

// Current returns the endpoint requests go to now.
func (f *failover) Current() string { return f.endpoints[f.cur.Load()].String() }
