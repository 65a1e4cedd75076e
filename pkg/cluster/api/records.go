package api

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/berth-dev/berth/pkg/cluster/scheduler"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

// The records kept in the store. They hold the SDK's ECS types (encoded
// with encoding/json) plus what the endpoint needs beside them.

// clusterRecord is stored in store.Clusters under the cluster name.
type clusterRecord struct {
	Cluster types.Cluster
}

// familyRecord is stored in store.Families under the family name.
type familyRecord struct {
	Family         string
	LatestRevision int32
}

// taskDefRecord is stored in store.TaskDefinitions under taskDefKey.
type taskDefRecord struct {
	TaskDefinition types.TaskDefinition
	Tags           []types.Tag
}

// instanceRecord is stored in store.Instances under "<cluster>/<id>".
type instanceRecord struct {
	Instance types.ContainerInstance
	Cluster  string
	// AgentKeyID is the access key that registered the instance; an agent
	// key may act only on instances bound to it.
	AgentKeyID string
	// Used resources of tasks placed here and not yet STOPPED.
	UsedCPU    int64
	UsedMemory int64
	UsedTCP    []int
	UsedUDP    []int
}

// taskRecord is stored in store.Tasks under "<cluster>/<id>".
type taskRecord struct {
	Task    types.Task
	Cluster string
	// Demand is what the task holds on its instance until Released.
	Demand   scheduler.Demand
	Released bool
	// ServiceSawRunning and ServiceSawStop record that the service
	// controller has counted the task's start and stop (launch failures,
	// backoff), so each is counted once.
	ServiceSawRunning bool `json:",omitempty"`
	ServiceSawStop    bool `json:",omitempty"`
}

func taskDefKey(family string, rev int32) string { return fmt.Sprintf("%s:%010d", family, rev) }

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,255}$`)

func (s *Server) clusterArn(name string) string {
	return fmt.Sprintf("arn:aws:ecs:%s:%s:cluster/%s", s.opts.Region, s.opts.AccountID, name)
}

func (s *Server) taskDefArn(family string, rev int32) string {
	return fmt.Sprintf("arn:aws:ecs:%s:%s:task-definition/%s:%d", s.opts.Region, s.opts.AccountID, family, rev)
}

func (s *Server) instanceArn(cluster, id string) string {
	return fmt.Sprintf("arn:aws:ecs:%s:%s:container-instance/%s/%s", s.opts.Region, s.opts.AccountID, cluster, id)
}

func (s *Server) taskArn(cluster, id string) string {
	return fmt.Sprintf("arn:aws:ecs:%s:%s:task/%s/%s", s.opts.Region, s.opts.AccountID, cluster, id)
}

func (s *Server) containerArn(cluster, taskID, id string) string {
	return fmt.Sprintf("arn:aws:ecs:%s:%s:container/%s/%s/%s", s.opts.Region, s.opts.AccountID, cluster, taskID, id)
}

// newID returns 32 lower-case hex digits, the form of ECS task and container
// instance ids.
func newID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate id: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// newUUID returns a random RFC 4122 UUID, the form of container ids.
func newUUID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate id: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], nil
}

// clusterName resolves a cluster name or ARN (nil: "default").
func (s *Server) clusterName(ref *string) (string, error) {
	if ref == nil || *ref == "" {
		return "default", nil
	}
	v := *ref
	if strings.HasPrefix(v, "arn:") {
		prefix := fmt.Sprintf("arn:aws:ecs:%s:%s:cluster/", s.opts.Region, s.opts.AccountID)
		name, ok := strings.CutPrefix(v, prefix)
		if !ok || !nameRE.MatchString(name) {
			return "", clusterNotFound()
		}
		return name, nil
	}
	if !nameRE.MatchString(v) {
		return "", clusterNotFound()
	}
	return v, nil
}

// activeCluster loads an ACTIVE cluster or fails with ClusterNotFoundException.
func activeCluster(tx store.Tx, name string) (*clusterRecord, error) {
	rec, ok, err := getRecord[clusterRecord](tx, store.Clusters, name)
	if err != nil {
		return nil, err
	}
	if !ok || aws.ToString(rec.Cluster.Status) != "ACTIVE" {
		return nil, clusterNotFound()
	}
	return rec, nil
}

// resourceID resolves an id or an ARN of the given kind ("task",
// "container-instance") in cluster to its id; ok is false when an ARN names
// another cluster or account.
func (s *Server) resourceID(kind, cluster, ref string) (string, bool) {
	if !strings.HasPrefix(ref, "arn:") {
		return ref, ref != "" && !strings.Contains(ref, "/")
	}
	prefix := fmt.Sprintf("arn:aws:ecs:%s:%s:%s/", s.opts.Region, s.opts.AccountID, kind)
	rest, ok := strings.CutPrefix(ref, prefix)
	if !ok {
		return "", false
	}
	c, id, ok := strings.Cut(rest, "/")
	if !ok {
		// Old-style ARNs without the cluster name.
		return c, c != ""
	}
	return id, c == cluster && id != "" && !strings.Contains(id, "/")
}

// paginate pages a list in a stable order; nextToken is the opaque offset of
// the next item.
func paginate(items []string, maxResults *int32, nextToken *string, limit int32) ([]string, *string, error) {
	n := limit
	if maxResults != nil {
		if *maxResults < 1 || *maxResults > limit {
			return nil, nil, invalidParam("maxResults must be between 1 and %d.", limit)
		}
		n = *maxResults
	}
	start := 0
	if nextToken != nil && *nextToken != "" {
		raw, err := base64.RawURLEncoding.DecodeString(*nextToken)
		if err != nil {
			return nil, nil, invalidParam("Invalid nextToken.")
		}
		off, err := strconv.Atoi(strings.TrimPrefix(string(raw), "offset:"))
		if err != nil || off < 0 || !strings.HasPrefix(string(raw), "offset:") {
			return nil, nil, invalidParam("Invalid nextToken.")
		}
		start = min(off, len(items))
	}
	end := start + int(n)
	if end >= len(items) {
		return items[start:], nil, nil
	}
	tok := base64.RawURLEncoding.EncodeToString([]byte("offset:" + strconv.Itoa(end)))
	return items[start:end], &tok, nil
}

func decode(raw []byte, v any) error {
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("decode stored record: %w", err)
	}
	return nil
}
