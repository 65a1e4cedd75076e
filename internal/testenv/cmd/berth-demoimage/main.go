// Command berth-demoimage builds the small HTTP server image that `make demo`
// runs (busybox-static httpd serving a page with a random id per container, and a
// line on standard output every two seconds) and pushes it to the loopback
// registry that berth-testenv started. It prints shell assignments for
// scripts/demo.sh: image (the reference), containerd (the socket) and
// snapshotter, so the script need not know testenv's variable names. It reuses internal/testenv's image builder, so it is a
// dev tool and never part of a release.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/berth-dev/berth/internal/testenv"
)

// script is the container's command: a shell as PID 1 that exits on
// SIGTERM (a plain shell as PID 1 would ignore it until SIGKILL).
const script = `trap 'echo "stopping"; exit 0' TERM
echo "Hello from Berth (container $(cut -c1-8 /proc/sys/kernel/random/uuid))" > /srv/index.html
echo "serving /srv on port 80"
httpd -f -v -p 80 -h /srv &
n=0
while true; do n=$((n+1)); echo "tick $n: still serving"; sleep 2 & wait $!; done`

func main() {
	host := os.Getenv(testenv.EnvRegistry)
	if host == "" {
		fmt.Fprintln(os.Stderr, "berth-demoimage: "+testenv.EnvRegistry+" is not set; run it under berth-testenv (make demo)")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	img, err := testenv.BuildAndPush(ctx, &testenv.RegistryInstance{Host: host}, "berth-demo/hello", testenv.ImageSpec{
		Files:        []testenv.File{{Path: "/srv/index.html", Mode: 0o644, Data: []byte("Hello from Berth\n")}},
		Cmd:          []string{"/bin/sh", "-c", script},
		ExposedPorts: []string{"80/tcp"},
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "berth-demoimage: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("image=%s\ncontainerd=%s\nsnapshotter=%s\n", img.Ref, os.Getenv(testenv.EnvContainerdAddress), os.Getenv(testenv.EnvSnapshotter))
}
