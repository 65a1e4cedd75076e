package runtime

import (
	"context"
	"time"

	"github.com/containerd/containerd/cio"
	"github.com/containerd/log"

	"github.com/berth-dev/berth/pkg/logs"
)

// Container output: a container with a log config (label io.berth.log-config)
// gets two FIFOs as its task's stdout and stderr. containerd's shim copies the
// output into them and pkg/logs' log daemon (one process for every container
// of this Runtime's LogDaemonDir) writes the json-file, so the output never
// passes through this process and no process is started per container.
// Containers created before the log daemon have a second label,
// io.berth.log-binary: their running task's shim started a logger process
// of its own (the "logger" mode), which keeps working; a new task of such a
// container is captured by the daemon like any other.

// captureFinishTimeout bounds how long a container's exit waits for the log
// daemon to write the rest of its output.
const captureFinishTimeout = 10 * time.Second

// fifoIO is a task's IO as the shim sees it: the paths of its stdout and
// stderr FIFOs. Nothing is copied in this process.
type fifoIO struct{ cfg cio.Config }

var _ cio.IO = fifoIO{}

func (f fifoIO) Config() cio.Config { return f.cfg }
func (fifoIO) Cancel()              {}
func (fifoIO) Wait()                {}
func (fifoIO) Close() error         { return nil }

// taskIO returns the IO of a new task of container id: a capture by the
// log daemon when the container has a log config (prepared is then true
// and the capture must be armed once the task exists, or dropped), else
// none.
func (r *Runtime) taskIO(id string, labels map[string]string) (io cio.Creator, prepared bool, err error) {
	arg := labels[labelLogConfig]
	if arg == "" {
		return cio.NullIO, false, nil
	}
	cfg, err := logs.DecodeConfig(arg)
	if err != nil {
		return nil, false, err
	}
	stdout, stderr, err := r.captures.Prepare(id, cfg)
	if err != nil {
		return nil, false, err
	}
	return func(string) (cio.IO, error) {
		return fifoIO{cio.Config{Stdout: stdout, Stderr: stderr}}, nil
	}, true, nil
}

// finishCaptures waits until the log daemon has written everything the
// container's ended tasks wrote. A daemon that does not manage within
// captureFinishTimeout costs the end of the log, not the exit.
func (r *Runtime) finishCaptures(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(ctx, captureFinishTimeout)
	defer cancel()
	if err := r.captures.Finish(ctx, id); err != nil {
		log.G(ctx).WithError(err).WithField("container", id).Warn("container log may be incomplete")
	}
}

// dropCaptures ends the container's captures (it is being removed).
func (r *Runtime) dropCaptures(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(ctx, captureFinishTimeout)
	defer cancel()
	if err := r.captures.Drop(ctx, id); err != nil {
		log.G(ctx).WithError(err).WithField("container", id).Warn("remove log capture")
	}
}
