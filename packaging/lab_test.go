package packaging

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	smithy "github.com/aws/smithy-go"

	"github.com/berth-dev/berth/internal/testenv"
)

// labIP is a loopback address standing in for the lab's endpoint VM
// (BERTH_LAB_NET=127.0.0 makes it 127.0.0.10; Linux routes all of 127/8 to lo).
const labIP = "127.0.0.10"

// TestLabPrepare runs lab/prepare.sh as an operator would, then serves
// berth-cluster with the configuration, certificate and data directory it
// staged, and uses the keys it wrote: the admin key over TLS trusting only
// the lab CA, the agent key within its role.
func TestLabPrepare(t *testing.T) {
	requireTool(t, "openssl", "openssl")
	root := repoRoot(t)
	work := t.TempDir()
	bin := filepath.Join(work, "berth-cluster")
	mustRun(t, root, []string{"CGO_ENABLED=0"}, "go", "build", "-o", bin, "./cmd/cluster")

	// prepare.sh finds the packages in ../dist; stand-ins will do, it
	// only copies them.
	lab := filepath.Join(work, "lab")
	for _, dir := range []string{lab, filepath.Join(work, "dist")} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(t, filepath.Join(root, "lab", "prepare.sh"), filepath.Join(lab, "prepare.sh"), 0o755)
	for _, deb := range []string{"berth-agent_1.0.0_amd64.deb", "berth-agent_1.1.0_amd64.deb", "berth-cluster_1.0.0_amd64.deb"} {
		writeFile(t, filepath.Join(work, "dist", deb), deb, 0o644)
	}
	port := freePort(t, labIP)
	env := []string{"BERTH_CLUSTER_BIN=" + bin, "BERTH_LAB_NET=127.0.0", "BERTH_LAB_PORT=" + port}
	mustRun(t, lab, env, "./prepare.sh")
	state := filepath.Join(lab, ".state")
	if got := readFile(t, filepath.Join(state, "dist", "berth-agent.deb")); got != "berth-agent_1.1.0_amd64.deb" {
		t.Errorf("prepare.sh staged %q as the agent package, want the newest (1.1.0)", got)
	}
	if out, err := runCmd(t.Context(), lab, env, "./prepare.sh"); err == nil {
		t.Errorf("a second prepare.sh without --force overwrote the keys:\n%s", out)
	}

	// The endpoint VM's files, with paths moved from /etc and /var/lib
	// into the staging directory and the listener kept on loopback.
	cfg := readFile(t, filepath.Join(state, "cluster.toml"))
	for old, repl := range map[string]string{
		`listen = ":` + port + `"`:                             `listen = "` + labIP + `:` + port + `"`,
		`"/etc/berth/tls/cluster.crt"`:                         `"` + filepath.Join(state, "endpoint.crt") + `"`,
		`"/etc/berth/tls/cluster.key"`:                         `"` + filepath.Join(state, "endpoint.key") + `"`,
		`data_dir = "/var/lib/berth-cluster"`:                  `data_dir = "` + filepath.Join(state, "cluster") + `"`,
		`poll_endpoint = "https://` + labIP + `:` + port + `"`: `poll_endpoint = "https://` + labIP + `:` + port + `"`,
	} {
		if !strings.Contains(cfg, old) {
			t.Fatalf("cluster.toml lacks %s:\n%s", old, cfg)
		}
		cfg = strings.ReplaceAll(cfg, old, repl)
	}
	cfgPath := filepath.Join(work, "cluster.toml")
	writeFile(t, cfgPath, cfg, 0o600)
	serve := exec.Command(bin, "serve", "--config", cfgPath)
	var out testenv.LockedBuffer
	serve.Stdout, serve.Stderr = &out, &out
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = serve.Process.Kill()
		_ = serve.Wait()
		if t.Failed() {
			t.Logf("berth-cluster output:\n%s", out.String())
		}
	})

	admin := readEnvFile(t, filepath.Join(state, "admin.env"))
	agent := readEnvFile(t, filepath.Join(state, "agent.env"))
	if got, want := admin["AWS_ENDPOINT_URL_ECS"], "https://"+labIP+":"+port; got != want {
		t.Errorf("admin.env endpoint %q, want %q", got, want)
	}
	if got := agent["ECS_BACKEND_HOST"]; got != admin["AWS_ENDPOINT_URL_ECS"] {
		t.Errorf("agent.env ECS_BACKEND_HOST %q differs from the admin endpoint %q", got, admin["AWS_ENDPOINT_URL_ECS"])
	}
	adminClient := labClient(t, admin["AWS_ENDPOINT_URL_ECS"], admin["AWS_CA_BUNDLE"], admin["AWS_REGION"],
		admin["AWS_ACCESS_KEY_ID"], admin["AWS_SECRET_ACCESS_KEY"])
	agentClient := labClient(t, agent["ECS_BACKEND_HOST"], admin["AWS_CA_BUNDLE"], agent["AWS_REGION"],
		agent["AWS_ACCESS_KEY_ID"], agent["AWS_SECRET_ACCESS_KEY"])

	// The walk-through's first command, retried until the endpoint serves.
	cluster := admin["BERTH_LAB_CLUSTER"]
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := adminClient.CreateCluster(t.Context(), &ecs.CreateClusterInput{ClusterName: aws.String(cluster)})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("create-cluster %s with the lab admin key: %v", cluster, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if _, err := agentClient.DiscoverPollEndpoint(t.Context(), &ecs.DiscoverPollEndpointInput{Cluster: aws.String(agent["ECS_CLUSTER"])}); err != nil {
		t.Errorf("discover-poll-endpoint with the lab agent key: %v", err)
	}
	_, err := agentClient.CreateCluster(t.Context(), &ecs.CreateClusterInput{ClusterName: aws.String("not-for-agents")})
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "AccessDeniedException" {
		t.Errorf("create-cluster with the agent key = %v, want AccessDeniedException", err)
	}
	// The CA key never leaves the host; Vagrant's rsync excludes it.
	if !regexp.MustCompile(`rsync__exclude: \["ca.key"\]`).MatchString(readFile(t, filepath.Join(root, "lab", "Vagrantfile"))) {
		t.Error("the Vagrantfile no longer keeps ca.key out of the VMs")
	}
}

// labClient is an ECS client that trusts only the lab CA.
func labClient(t *testing.T, url, caFile, region, keyID, secret string) *ecs.Client {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(readFile(t, caFile))) {
		t.Fatalf("no certificate in %s", caFile)
	}
	httpClient := awshttp.NewBuildableClient().WithTimeout(10 * time.Second).
		WithTransportOptions(func(tr *http.Transport) { tr.TLSClientConfig = &tls.Config{RootCAs: pool} })
	return ecs.New(ecs.Options{
		Region: region, BaseEndpoint: aws.String(url), HTTPClient: httpClient,
		Credentials: credentials.NewStaticCredentialsProvider(keyID, secret, ""),
	})
}

// readEnvFile reads KEY=VALUE lines, with or without "export ".
func readEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	vars := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(readFile(t, path)))
	for sc.Scan() {
		line := strings.TrimPrefix(sc.Text(), "export ")
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			vars[k] = v
		}
	}
	return vars
}

func freePort(t *testing.T, ip string) string {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}
