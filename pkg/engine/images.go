package engine

import (
	"context"
	"errors"
	"sort"
	"time"

	"github.com/berth-dev/berth/pkg/container"
)

// ImageStore lists and removes images, for image clean-up.
type ImageStore interface {
	Images(ctx context.Context) ([]container.ImageInfo, error)
	RemoveImage(ctx context.Context, ref string) error
}

// ImageCleanup configures the removal of unused images
// (ECS_IMAGE_CLEANUP_INTERVAL, ECS_IMAGE_MINIMUM_CLEANUP_AGE,
// ECS_NUM_IMAGES_DELETE_PER_CYCLE; off with ECS_DISABLE_IMAGE_CLEANUP).
type ImageCleanup struct {
	Store ImageStore
	// Interval between clean-up cycles; zero disables clean-up.
	Interval time.Duration
	// MinimumAge spares images used (pulled or run) more recently.
	MinimumAge time.Duration
	// PerCycle caps the removals of one cycle; zero means 5 (ECS's default).
	PerCycle int
}

// runImageCleanup removes unused images every interval until ctx ends.
func (e *Engine) runImageCleanup(ctx context.Context) {
	ic := e.opts.Images
	t := time.NewTicker(ic.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		removed, err := e.CleanImages(ctx)
		if err != nil && ctx.Err() == nil {
			e.log.Warn("image clean-up", "removed", removed, "err", err)
		}
	}
}

// CleanImages runs one image clean-up cycle: it removes, oldest first and
// at most PerCycle, images that no known task (running or not yet cleaned
// up) uses and that were not used within MinimumAge. It returns the
// removed references.
func (e *Engine) CleanImages(ctx context.Context) ([]string, error) {
	ic := e.opts.Images
	if ic.Store == nil {
		return nil, nil
	}
	perCycle := ic.PerCycle
	if perCycle <= 0 {
		perCycle = 5
	}
	images, err := ic.Store.Images(ctx)
	if err != nil {
		return nil, err
	}
	inUse := map[string]bool{}
	for _, st := range e.Tasks() {
		for _, d := range st.Def.Containers {
			inUse[d.Image] = true
		}
		for _, c := range st.Containers {
			inUse[c.ImageRef] = true
		}
	}
	e.mu.Lock()
	lastUsed := make(map[string]time.Time, len(e.imageUse))
	for k, v := range e.imageUse {
		lastUsed[k] = v
	}
	e.mu.Unlock()
	now := e.opts.Now()
	var candidates []container.ImageInfo
	for _, img := range images {
		if inUse[img.Ref] {
			continue
		}
		used := img.UpdatedAt
		if t, ok := lastUsed[img.Ref]; ok && t.After(used) {
			used = t
		}
		if now.Sub(used) < ic.MinimumAge {
			continue
		}
		img.UpdatedAt = used
		candidates = append(candidates, img)
	}
	sort.Slice(candidates, func(i, j int) bool { return candidates[i].UpdatedAt.Before(candidates[j].UpdatedAt) })
	var removed []string
	var errs []error
	for _, img := range candidates {
		if len(removed) >= perCycle {
			break
		}
		if err := ic.Store.RemoveImage(ctx, img.Ref); err != nil && !errors.Is(err, container.ErrNotFound) {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, img.Ref)
	}
	return removed, errors.Join(errs...)
}

// usedImage records that a task used an image now (pull or start).
func (e *Engine) usedImage(ref string) {
	if ref == "" {
		return
	}
	e.mu.Lock()
	e.imageUse[ref] = e.opts.Now()
	e.mu.Unlock()
}
