package runtime

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/pkg/container"
)

// ownerAuth is a PullAuthorizer that logs in only for one owner.
type ownerAuth struct {
	owner string
	creds container.Credentials
	asked []string
}

func (a *ownerAuth) PullCredentials(ctx context.Context, owner, ref string) (*container.Credentials, error) {
	a.asked = append(a.asked, owner)
	if owner != a.owner {
		return nil, errors.New("no role for " + owner)
	}
	return &a.creds, nil
}

// TestPullAuthAndImages covers what the engine gets from the Runtime for
// images: Pull logs in as Options.PullAuth says for the owner in the
// context (and fails naming the login when it cannot), Images lists what
// was pulled, RemoveImage deletes it and then reports container.ErrNotFound.
func TestPullAuthAndImages(t *testing.T) {
	areg := testenv.AuthRegistry(t)
	img := testenv.BuildImage(t, areg, "rt/owned", testenv.ImageSpec{Cmd: []string{"/bin/true"}})
	auth := &ownerAuth{owner: "task-a", creds: container.Credentials{Username: areg.Username, Password: areg.Password}}
	tr := newTestRuntime(t, func(o *Options) { o.PullAuth = auth; o.PullBehavior = PullAlways })

	_, err := tr.Pull(container.WithPullFor(t.Context(), "task-b"), img.Ref)
	if err == nil || !strings.Contains(err.Error(), "registry login") || !strings.Contains(err.Error(), "task-b") {
		t.Fatalf("pull for an owner without a login = %v, want a registry login error", err)
	}
	got, err := tr.Pull(container.WithPullFor(t.Context(), "task-a"), img.Ref)
	if err != nil {
		t.Fatalf("pull with the owner's login: %v", err)
	}
	if !slices.Equal(auth.asked, []string{"task-b", "task-a"}) {
		t.Errorf("PullAuth asked for %q, want task-b then task-a", auth.asked)
	}

	images, err := tr.Images(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(images, func(i container.ImageInfo) bool { return i.Ref == got.Ref && !i.UpdatedAt.IsZero() }) {
		t.Fatalf("Images = %+v, want %s", images, got.Ref)
	}
	if err := tr.RemoveImage(t.Context(), got.Ref); err != nil {
		t.Fatal(err)
	}
	if err := tr.RemoveImage(t.Context(), got.Ref); !errors.Is(err, container.ErrNotFound) {
		t.Errorf("second RemoveImage = %v, want container.ErrNotFound", err)
	}
	images, err = tr.Images(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(images, func(i container.ImageInfo) bool { return i.Ref == got.Ref }) {
		t.Errorf("%s still listed after RemoveImage", got.Ref)
	}
	// RemoveImage leaves the content to containerd's garbage collection, as
	// the agent's image clean-up wants; pulled again, the image is deleted
	// synchronously with the test's namespace, which collects both.
	if _, err := tr.Pull(container.WithPullFor(t.Context(), "task-a"), img.Ref); err != nil {
		t.Fatal(err)
	}
}
