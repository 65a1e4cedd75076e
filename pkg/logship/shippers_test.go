package logship

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/berth-dev/berth/pkg/logs"
)

// Shippers validates, starts, drains across an agent restart, and
// removes a container's shipping; json-file needs no Shipper.
func TestShippersLifecycle(t *testing.T) {
	dir := t.TempDir()
	ls := startLogStore(t, filepath.Join(dir, "logs.db"))
	deps := Deps{AWSCredentials: credentials.NewStaticCredentialsProvider(lsKeyID, lsSecret, ""), AWSRegion: lsRegion, AWSLogsEndpoint: ls.url()}
	posDir := filepath.Join(dir, "logship")
	m := NewShippers(ShippersOptions{PositionDir: posDir, Deps: deps})
	ctx := context.Background()
	path := filepath.Join(dir, "c1-json.log")
	w := startLog(t, logs.Config{Path: path})
	c := ContainerLog{ID: "c1", LogPath: path, Driver: DriverAWSLogs, Info: ContainerInfo{ID: "c1", Name: "web", TaskID: "t1"},
		Options: map[string]string{"awslogs-group": "g", "awslogs-create-group": "true", "awslogs-stream-prefix": "p", "awslogs-force-flush-interval-seconds": "1"}}
	bad := c
	bad.Options = map[string]string{"awslogs-group": "g", "awslogs-typo": "1"}
	if err := m.StartContainer(ctx, bad); !errors.Is(err, ErrInvalidOption) {
		t.Fatalf("bad options: %v", err)
	}
	if err := m.StartContainer(ctx, ContainerLog{ID: "c0", LogPath: path, Driver: DriverJSONFile}); err != nil {
		t.Fatal(err)
	}
	if _, ok := m.Stats("c0"); ok {
		t.Fatal("json-file got a Shipper")
	}
	if err := m.StartContainer(ctx, c); err != nil {
		t.Fatal(err)
	}
	w.write(t, 0, 3000)
	waitFor(t, "lines shipped", func() bool { st, _ := m.Stats("c1"); return st.Shipped >= 3000 })
	if err := m.Close(); err != nil { // agent stops
		t.Fatal(err)
	}
	w.write(t, 3000, 6000)
	w.close()
	m = NewShippers(ShippersOptions{PositionDir: posDir, Deps: deps}) // agent restarts
	if err := m.StartContainer(ctx, c); err != nil {
		t.Fatal(err)
	}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := m.DrainContainer(dctx, "c1"); err != nil {
		t.Fatal(err)
	}
	checkExactly(t, ls.readStream(t, "g", "p/web/t1"), 0, 6000)
	if err := m.RemoveContainer("c1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(posDir, "c1.json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("position file left: %v", err)
	}
	if got := m.Metrics().Snapshot()[DriverAWSLogs].Shipped; got != 3000 {
		t.Fatalf("second agent's metrics count %d shipped, want 3000", got)
	}
}
