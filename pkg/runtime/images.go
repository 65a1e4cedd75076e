package runtime

import (
	"context"
	"fmt"

	"github.com/containerd/containerd/errdefs"

	"github.com/berth-dev/berth/pkg/container"
)

// Images lists the images of the Runtime's namespace, for image clean-up.
func (r *Runtime) Images(ctx context.Context) ([]container.ImageInfo, error) {
	imgs, err := r.client.ImageService().List(r.withNS(ctx))
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	out := make([]container.ImageInfo, 0, len(imgs))
	for _, img := range imgs {
		out = append(out, container.ImageInfo{Ref: img.Name, UpdatedAt: img.UpdatedAt})
	}
	return out, nil
}

// RemoveImage deletes the image ref of the Runtime's namespace; one that is
// not there is container.ErrNotFound (wrapped).
func (r *Runtime) RemoveImage(ctx context.Context, ref string) error {
	if err := r.client.ImageService().Delete(r.withNS(ctx), ref); err != nil {
		if errdefs.IsNotFound(err) {
			return fmt.Errorf("remove image %s: %w", ref, container.ErrNotFound)
		}
		return fmt.Errorf("remove image %s: %w", ref, err)
	}
	return nil
}
