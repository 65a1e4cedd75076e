package engine_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/pkg/container"
	"github.com/berth-dev/berth/pkg/engine"
)

type fakeImages struct {
	mu     sync.Mutex
	images []container.ImageInfo
}

func (f *fakeImages) Images(ctx context.Context) ([]container.ImageInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.images), nil
}

func (f *fakeImages) RemoveImage(ctx context.Context, ref string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.images = slices.DeleteFunc(f.images, func(i container.ImageInfo) bool { return i.Ref == ref })
	return nil
}

func TestImageCleanupRemovesOldestUnusedImages(t *testing.T) {
	now := time.Now()
	store := &fakeImages{images: []container.ImageInfo{
		{Ref: "in-use", UpdatedAt: now.Add(-10 * time.Hour)},
		{Ref: "old", UpdatedAt: now.Add(-5 * time.Hour)},
		{Ref: "oldest", UpdatedAt: now.Add(-9 * time.Hour)},
		{Ref: "recent", UpdatedAt: now.Add(-time.Minute)},
	}}
	h := newHarness(t, func(o *engine.Options) {
		o.Images = engine.ImageCleanup{Store: store, MinimumAge: time.Hour, PerCycle: 1}
	})
	def := simpleTask("arn:aws:ecs:us-east-1:0:task/lab/img", engine.ContainerDef{Name: "c", Image: "in-use", Essential: true})
	h.apply(def, engine.TaskRunning)
	h.waitStatus(def.ARN, engine.TaskRunning)

	for _, want := range [][]string{{"oldest"}, {"old"}, nil} {
		got, err := h.eng.CleanImages(context.Background())
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("CleanImages removed %v (%v), want %v", got, err, want)
		}
	}
	left, _ := store.Images(context.Background())
	if len(left) != 2 {
		t.Fatalf("images left %v, want in-use and recent", left)
	}
}
