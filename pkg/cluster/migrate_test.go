package cluster_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-dev/berth/internal/simfleet"
	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/pkg/cluster"
	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/cluster/records"
	"github.com/berth-dev/berth/pkg/cluster/roles"
	"github.com/berth-dev/berth/pkg/cluster/servicectl"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

// writeKEK writes a 32-byte key-encryption key file.
func writeKEK(t *testing.T, b byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cluster.kek")
	if err := os.WriteFile(path, bytes.Repeat([]byte{b}, 32), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// ecsState is what the ECS API answers about every cluster: clusters,
// task definitions with their revisions, services, and tasks with their
// statuses and instances, one line each, sorted.
func ecsState(t *testing.T, ctx context.Context, admin *ecs.Client) string {
	t.Helper()
	var lines []string
	lc, err := admin.ListClusters(ctx, &ecs.ListClustersInput{})
	if err != nil {
		t.Fatalf("list clusters: %v", err)
	}
	td, err := admin.ListTaskDefinitions(ctx, &ecs.ListTaskDefinitionsInput{})
	if err != nil {
		t.Fatalf("list task definitions: %v", err)
	}
	lines = append(lines, td.TaskDefinitionArns...)
	for _, c := range lc.ClusterArns {
		lines = append(lines, c)
		ls, err := admin.ListServices(ctx, &ecs.ListServicesInput{Cluster: aws.String(c)})
		if err != nil {
			t.Fatal(err)
		}
		if len(ls.ServiceArns) > 0 {
			ds, err := admin.DescribeServices(ctx, &ecs.DescribeServicesInput{Cluster: aws.String(c), Services: ls.ServiceArns})
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range ds.Services {
				lines = append(lines, fmt.Sprintf("%s %s desired=%d deployments=%d", aws.ToString(s.ServiceArn), aws.ToString(s.TaskDefinition), s.DesiredCount, len(s.Deployments)))
			}
		}
		for _, status := range []types.DesiredStatus{types.DesiredStatusRunning, types.DesiredStatusStopped} {
			lt, err := admin.ListTasks(ctx, &ecs.ListTasksInput{Cluster: aws.String(c), DesiredStatus: status})
			if err != nil {
				t.Fatal(err)
			}
			if len(lt.TaskArns) == 0 {
				continue
			}
			dt, err := admin.DescribeTasks(ctx, &ecs.DescribeTasksInput{Cluster: aws.String(c), Tasks: lt.TaskArns})
			if err != nil {
				t.Fatal(err)
			}
			for _, tk := range dt.Tasks {
				lines = append(lines, fmt.Sprintf("%s %s %s/%s on %s", aws.ToString(tk.TaskArn), aws.ToString(tk.TaskDefinitionArn),
					aws.ToString(tk.LastStatus), aws.ToString(tk.DesiredStatus), aws.ToString(tk.ContainerInstanceArn)))
			}
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// TestMigrateBboltToEtcd: a bbolt cluster with a running service, a
// RunTask task, several task definition revisions and agent and admin keys
// is migrated to etcd (offline); a replica on etcd then answers every
// ARN, revision and task as the bbolt endpoint did, the admin and agent
// keys sign requests, and the credentials-id key came along. Migrating
// again into the now non-empty prefix is refused unless told.
func TestMigrateBboltToEtcd(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src := startEndpointWith(t, dir, func(o *cluster.Options) {
		o.NoAgentSessions = false
		o.Services = servicectl.Timing{Interval: 50 * time.Millisecond, HealthyAfter: 100 * time.Millisecond}
	})
	fctx, stopFleet := context.WithCancel(ctx)
	defer stopFleet()
	fleet, err := simfleet.Start(fctx, simfleet.Options{Endpoint: src.url, Region: testRegion, Cluster: "mig",
		StartDelay: 10 * time.Millisecond, StopDelay: 10 * time.Millisecond,
		NewAgentKey: func() (string, string, error) { return src.ep.Keys().Create(auth.RoleAgent, time.Now()) }})
	if err != nil {
		t.Fatal(err)
	}
	admin := src.admin()
	if _, err := admin.CreateCluster(ctx, &ecs.CreateClusterInput{ClusterName: aws.String("mig")}); err != nil {
		t.Fatal(err)
	}
	if _, err := fleet.Add(ctx, 2, nil); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := admin.RegisterTaskDefinition(ctx, &ecs.RegisterTaskDefinitionInput{Family: aws.String("web"),
			ContainerDefinitions: []types.ContainerDefinition{{Name: aws.String("c"), Image: aws.String("busybox"), Memory: aws.Int32(64)}}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := admin.CreateService(ctx, &ecs.CreateServiceInput{Cluster: aws.String("mig"), ServiceName: aws.String("web"),
		TaskDefinition: aws.String("web:3"), DesiredCount: aws.Int32(4)}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.RunTask(ctx, &ecs.RunTaskInput{Cluster: aws.String("mig"), TaskDefinition: aws.String("web:1")}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the service's 4 tasks and the RunTask task running", func() bool {
		n := 0
		for _, in := range fleet.Instances() {
			n += len(in.Running())
		}
		return n == 5 && strings.Count(ecsState(t, ctx, admin), "RUNNING/RUNNING") == 5
	})
	agentID, agentSecret := newKey(t, src.ep, auth.RoleAgent)
	idKey, err := roles.LoadIDKey(dir) // as an endpoint with roles has one
	if err != nil {
		t.Fatal(err)
	}
	before := ecsState(t, ctx, admin)
	adminID, adminSecret := src.adminID, src.adminSecret
	fleet.Close()
	src.stop() // offline

	etcd := testenv.Etcd(t, 3)
	eo := cluster.EtcdOptions{Endpoints: etcd.Endpoints, Prefix: "/berth/migrated/", KEKFile: writeKEK(t, 5),
		LeaseTTL: 2 * time.Second} // etcd's default max_txn_ops: the copy goes in batches
	counts, err := cluster.Migrate(ctx, cluster.StoreLocation{DataDir: dir}, cluster.StoreLocation{Etcd: &eo}, false)
	if err != nil {
		t.Fatalf("migrate: %v", err)
	}
	if counts[records.Tasks] != 5 || counts[records.TaskDefinitions] != 3 || counts[auth.KeysBucket] != 4 {
		t.Errorf("migrated %s; want 5 tasks, 3 task definitions, 4 access keys (admin, 2 instances', agent)", counts)
	}
	_, err = cluster.Migrate(ctx, cluster.StoreLocation{DataDir: dir}, cluster.StoreLocation{Etcd: &eo}, false)
	if !errors.Is(err, cluster.ErrStoreNotEmpty) {
		t.Fatalf("second migrate into a non-empty prefix: %v, want ErrStoreNotEmpty", err)
	}
	if _, err := cluster.Migrate(ctx, cluster.StoreLocation{DataDir: dir}, cluster.StoreLocation{Etcd: &eo}, true); err != nil {
		t.Fatalf("migrate with replace: %v", err)
	}

	r := startReplica(t, "after", eo)
	after := ecsState(t, ctx, r.client(adminID, adminSecret))
	if after != before {
		t.Errorf("after the migration the ECS API answers\n%s\nwant (as on bbolt)\n%s", after, before)
	}
	agent := r.client(agentID, agentSecret)
	if _, err := agent.DiscoverPollEndpoint(ctx, &ecs.DiscoverPollEndpointInput{Cluster: aws.String("mig")}); err != nil {
		t.Errorf("the agent key made on bbolt, on etcd: %v", err)
	}
	// The credentials-id key travelled sealed: a backup of etcd restored
	// into a data directory gives back the same file.
	var buf bytes.Buffer
	if _, err := cluster.Backup(ctx, cluster.StoreLocation{Etcd: &eo}, &buf, cluster.BackupOptions{}); err != nil {
		t.Fatalf("backup etcd: %v", err)
	}
	back := t.TempDir()
	if _, err := cluster.Restore(ctx, cluster.StoreLocation{DataDir: back}, &buf, cluster.RestoreOptions{KEKFile: eo.KEKFile}); err != nil {
		t.Fatalf("restore etcd's backup into bbolt: %v", err)
	}
	if got, err := os.ReadFile(filepath.Join(back, roles.IDKeyFile)); err != nil || !bytes.Equal(got, idKey) {
		t.Errorf("credentials-id key after bbolt → etcd → backup → bbolt differs (%v)", err)
	}
	for _, f := range []string{auth.MasterKeyFile} {
		a, _ := os.ReadFile(filepath.Join(dir, f))
		b, _ := os.ReadFile(filepath.Join(back, f))
		if len(a) != 32 || !bytes.Equal(a, b) {
			t.Errorf("%s differs after the round trip", f)
		}
	}
}

// TestBackupRestoreRoundTrip: on bbolt and on etcd, a backup restored into
// an empty store gives back every record; a store with records is refused
// unless told; a damaged or truncated file is refused before anything is
// written; a backup of bbolt needs a KEK and names the flag.
func TestBackupRestoreRoundTrip(t *testing.T) {
	ctx := context.Background()
	etcd := testenv.Etcd(t, 1)
	kek := writeKEK(t, 9)
	etcdAt := func(prefix string) cluster.StoreLocation {
		return cluster.StoreLocation{Etcd: &cluster.EtcdOptions{Endpoints: etcd.Endpoints, Prefix: prefix, KEKFile: kek}}
	}
	for _, tc := range []struct {
		name     string
		src, dst cluster.StoreLocation
		open     func(t *testing.T, loc cluster.StoreLocation) *runningEndpoint
	}{
		{"bbolt", cluster.StoreLocation{DataDir: t.TempDir()}, cluster.StoreLocation{DataDir: t.TempDir()},
			func(t *testing.T, loc cluster.StoreLocation) *runningEndpoint { return startEndpoint(t, loc.DataDir) }},
		{"etcd", etcdAt("/berth/backup-src/"), etcdAt("/berth/backup-dst/"),
			func(t *testing.T, loc cluster.StoreLocation) *runningEndpoint {
				return startEndpointWith(t, t.TempDir(), func(o *cluster.Options) { o.Etcd = loc.Etcd })
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := tc.open(t, tc.src)
			admin := src.admin()
			if _, err := admin.CreateCluster(ctx, &ecs.CreateClusterInput{ClusterName: aws.String("b")}); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 300; i++ { // more than one etcd transaction's worth
				if _, err := admin.RegisterTaskDefinition(ctx, &ecs.RegisterTaskDefinitionInput{Family: aws.String(fmt.Sprintf("f%d", i%7)),
					ContainerDefinitions: []types.ContainerDefinition{{Name: aws.String("c"), Image: aws.String("busybox"), Memory: aws.Int32(8)}}}); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := admin.RegisterContainerInstance(ctx, &ecs.RegisterContainerInstanceInput{Cluster: aws.String("b"), TotalResources: []types.Resource{
				{Name: aws.String("CPU"), Type: aws.String("INTEGER"), IntegerValue: 1024},
				{Name: aws.String("MEMORY"), Type: aws.String("INTEGER"), IntegerValue: 1024}}}); err != nil {
				t.Fatal(err)
			}
			before := ecsState(t, ctx, admin)
			snapBefore := snapshotAt(t, src.ep.Store())
			adminID, adminSecret := src.adminID, src.adminSecret
			src.stop()

			if _, err := cluster.Backup(ctx, cluster.StoreLocation{DataDir: tc.src.DataDir}, &bytes.Buffer{}, cluster.BackupOptions{}); tc.name == "bbolt" &&
				(err == nil || !strings.Contains(err.Error(), "--kek")) {
				t.Errorf("bbolt backup without a KEK: %v, want an error naming --kek", err)
			}
			var file bytes.Buffer
			counts, err := cluster.Backup(ctx, tc.src, &file, cluster.BackupOptions{KEKFile: kek})
			if err != nil {
				t.Fatalf("backup: %v", err)
			}
			if counts[records.TaskDefinitions] != 300 || counts[records.Families] != 7 {
				t.Errorf("backup counts %s", counts)
			}
			if strings.Contains(file.String(), string(mustRead(t, kek))) {
				t.Fatal("the backup holds the KEK")
			}
			data := file.Bytes()
			for name, bad := range map[string][]byte{
				"damaged":   bytes.Replace(data, []byte(`"f3"`), []byte(`"f4"`), 1),
				"truncated": data[:len(data)/2],
				"no header": data[bytes.IndexByte(data, '\n')+1:],
			} {
				_, err := cluster.Restore(ctx, tc.dst, bytes.NewReader(bad), cluster.RestoreOptions{KEKFile: kek})
				if err == nil {
					t.Fatalf("restore of a %s backup succeeded", name)
				}
				t.Logf("%s backup: %v", name, err)
			}
			if _, err := cluster.Restore(ctx, tc.dst, bytes.NewReader(data), cluster.RestoreOptions{KEKFile: kek}); err != nil {
				t.Fatalf("restore: %v", err)
			}
			if _, err := cluster.Restore(ctx, tc.dst, bytes.NewReader(data), cluster.RestoreOptions{KEKFile: kek}); !errors.Is(err, cluster.ErrStoreNotEmpty) {
				t.Fatalf("restore into a non-empty store: %v, want ErrStoreNotEmpty", err)
			}
			if _, err := cluster.Restore(ctx, tc.dst, bytes.NewReader(data), cluster.RestoreOptions{KEKFile: kek, Replace: true}); err != nil {
				t.Fatalf("restore with replace: %v", err)
			}
			dst := tc.open(t, tc.dst)
			if got := ecsState(t, ctx, dst.client(adminID, adminSecret)); got != before {
				t.Errorf("restored store answers\n%s\nwant\n%s", got, before)
			}
			snapAfter := snapshotAt(t, dst.ep.Store())
			for b, recs := range snapBefore {
				if b == records.Instances {
					if len(snapAfter[b]) != len(recs) {
						t.Errorf("instances: %d restored, want %d", len(snapAfter[b]), len(recs))
					}
					continue
				}
				for k, v := range recs {
					if snapAfter[b][k] != v {
						t.Errorf("%s/%s differs after the round trip", b, k)
					}
				}
				if len(snapAfter[b]) != len(recs) {
					t.Errorf("%s: %d records restored, want %d", b, len(snapAfter[b]), len(recs))
				}
			}
		})
	}
}

func snapshotAt(t *testing.T, st store.Store) map[store.Bucket]map[string]string {
	t.Helper()
	var bs []store.Bucket
	for _, b := range cluster.Buckets() {
		if b != "agent-sessions" {
			bs = append(bs, b)
		}
	}
	snap, err := store.Snapshot(st, bs)
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
