package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/opencontainers/go-digest"
)

// errUnexpectedStatus marks a registry answer this package did not expect.
var errUnexpectedStatus = errors.New("unexpected registry status")

// pusher uploads blobs and manifests to one repository with the Docker
// Registry HTTP API v2 over plain HTTP.
type pusher struct {
	client *http.Client
	reg    RegistryInstance
	repo   string
}

func newPusher(reg *RegistryInstance, repo string) *pusher {
	return &pusher{client: &http.Client{Timeout: time.Minute}, reg: *reg, repo: repo}
}

// do sends one request with the registry's basic-auth credentials, if any.
func (p *pusher) do(ctx context.Context, method, u, contentType string, body []byte) (*http.Response, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, r)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.ContentLength = int64(len(body))
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if p.reg.Username != "" {
		req.SetBasicAuth(p.reg.Username, p.reg.Password)
	}
	return p.client.Do(req)
}

// statusError describes a response that was not the expected status.
func statusError(what string, resp *http.Response, want int) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return fmt.Errorf("%s: %w: got %d, want %d: %s", what, errUnexpectedStatus, resp.StatusCode, want, bytes.TrimSpace(b))
}

// pushBlob uploads data unless the registry already has it.
func (p *pusher) pushBlob(ctx context.Context, dgst digest.Digest, data []byte) error {
	what := fmt.Sprintf("push blob %s to %s/%s", dgst, p.reg.Host, p.repo)
	base := "http://" + p.reg.Host + "/v2/" + p.repo
	resp, err := p.do(ctx, http.MethodHead, base+"/blobs/"+dgst.String(), "", nil)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	resp, err = p.do(ctx, http.MethodPost, base+"/blobs/uploads/", "", nil)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return statusError(what+": start upload", resp, http.StatusAccepted)
	}
	loc, err := resp.Location()
	if err != nil {
		return fmt.Errorf("%s: upload location: %w", what, err)
	}
	q := loc.Query()
	q.Set("digest", dgst.String())
	loc.RawQuery = q.Encode()
	put, err := p.do(ctx, http.MethodPut, loc.String(), "application/octet-stream", data)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer put.Body.Close()
	if put.StatusCode != http.StatusCreated {
		return statusError(what+": finish upload", put, http.StatusCreated)
	}
	return nil
}

// pushManifest uploads a manifest under tag and returns its digest.
func (p *pusher) pushManifest(ctx context.Context, tag, mediaType string, data []byte) (digest.Digest, error) {
	what := fmt.Sprintf("push manifest %s/%s:%s", p.reg.Host, p.repo, tag)
	u := "http://" + p.reg.Host + "/v2/" + p.repo + "/manifests/" + url.PathEscape(tag)
	resp, err := p.do(ctx, http.MethodPut, u, mediaType, data)
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return "", statusError(what, resp, http.StatusCreated)
	}
	want := digest.FromBytes(data)
	if got := resp.Header.Get("Docker-Content-Digest"); got != "" && got != want.String() {
		return "", fmt.Errorf("%s: registry stored digest %s, computed %s", what, got, want)
	}
	return want, nil
}
