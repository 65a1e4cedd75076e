package layout

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/berth-dev/berth"

// rule forbids packages matching from (minus fromExcept) to import packages
// matching to (minus toExcept). Patterns are module-relative; "x/..." matches
// x and everything below it, "..." matches every package of the module.
// Rules over packages that do not exist yet simply match nothing.
type rule struct {
	why                string
	from, fromExcept   []string
	to, toExcept       []string
	toExternal         []string // import path prefixes outside the module, forbidden too
	transitive         bool     // check Deps (all non-test dependencies) instead of direct imports
	includeTestImports bool     // direct rules only: also check the package's tests' imports
}

// rules is DESIGN.md's "Packages" table as data.
func rules() []rule {
	return []rule{
		// internal/simfleet/e2e assembles whole agents from configuration, as cmd/agent does.
		{why: "only cmd/* and pkg/agent import pkg/config; other packages take their own options structs",
			from: []string{"..."}, fromExcept: []string{"cmd/...", "pkg/agent/...", "pkg/config/...", "internal/simfleet/e2e"},
			to: []string{"pkg/config/..."}, includeTestImports: true},
		{why: "pkg/config imports no other berth package",
			from: []string{"pkg/config/..."}, to: []string{"..."}, toExcept: []string{"pkg/config/..."}, transitive: true},
		{why: "pkg/api holds wire types only and imports no other berth package",
			from: []string{"pkg/api/..."}, to: []string{"..."}, toExcept: []string{"pkg/api/..."}, transitive: true},
		{why: "pkg/runtime and pkg/network know nothing of ECS",
			from: []string{"pkg/runtime/...", "pkg/network/..."},
			to:   []string{"pkg/api/...", "pkg/engine/...", "pkg/registration/...", "pkg/config/..."}, transitive: true},
		{why: "pkg/cluster/... imports no agent package except pkg/api",
			from: []string{"pkg/cluster/..."}, to: []string{"pkg/..."}, toExcept: []string{"pkg/api/...", "pkg/cluster/..."}, transitive: true},
		{why: "only pkg/cluster wires the ECS API's handlers: the session server, the log store, the service controller and the layers below never import pkg/cluster/ecsapi",
			from: []string{"pkg/cluster/..."}, fromExcept: []string{"pkg/cluster", "pkg/cluster/ecsapi"}, to: []string{"pkg/cluster/ecsapi"}},
		{why: "the endpoint's parts do not import the package that wires them (pkg/cluster)",
			from: []string{"pkg/cluster/..."}, fromExcept: []string{"pkg/cluster"}, to: []string{"pkg/cluster"}},
		{why: "records, launch, servicectl and awsproto stay below the APIs and the session server",
			from: []string{"pkg/cluster/records", "pkg/cluster/launch", "pkg/cluster/servicectl", "pkg/cluster/awsproto"},
			to:   []string{"pkg/cluster/ecsapi", "pkg/cluster/acs", "pkg/cluster/logstore", "pkg/cluster/roles", "pkg/cluster/elbv2", "pkg/cluster/secrets"}, transitive: true},
		{why: "only pkg/cluster wires the Elastic Load Balancing API (pkg/cluster/elbv2); its wire package lbwire is for the data plane",
			from: []string{"..."}, fromExcept: []string{"pkg/cluster", "pkg/cluster/elbv2"}, to: []string{"pkg/cluster/elbv2"}},
		{why: "only pkg/cluster wires Application Auto Scaling (pkg/cluster/autoscaling): the alarms reach it through metrics.ActionRunner",
			from: []string{"..."}, fromExcept: []string{"pkg/cluster", "pkg/cluster/autoscaling"}, to: []string{"pkg/cluster/autoscaling"}},
		{why: "only pkg/cluster wires the CloudWatch API (pkg/cluster/cloudwatchapi)",
			from: []string{"..."}, fromExcept: []string{"pkg/cluster", "pkg/cluster/cloudwatchapi"}, to: []string{"pkg/cluster/cloudwatchapi"}},
		{why: "the metrics store (pkg/cluster/metrics) stays below the APIs and the session server that feed it",
			from: []string{"pkg/cluster/metrics"},
			to:   []string{"pkg/cluster/ecsapi", "pkg/cluster/acs", "pkg/cluster/cloudwatchapi", "pkg/cluster/servicectl", "pkg/cluster/elbv2"}, transitive: true},
		{why: "only pkg/cluster wires the SSM Parameter Store and Secrets Manager APIs (pkg/cluster/secrets): no other package reads the sealed values",
			from: []string{"..."}, fromExcept: []string{"pkg/cluster", "pkg/cluster/secrets"}, to: []string{"pkg/cluster/secrets"}},
		{why: "the load balancer data plane's wire types (pkg/cluster/elbv2/lbwire) import no other Berth package, so berth-lb links none of the endpoint",
			from: []string{"pkg/cluster/elbv2/lbwire"}, to: []string{"..."}, toExcept: []string{"pkg/cluster/elbv2/lbwire"}, transitive: true},
		{why: "berth-lb's data plane (pkg/lb) links none of the endpoint or the agent: of Berth it imports only the data-plane wire types (pkg/cluster/elbv2/lbwire)",
			from: []string{"pkg/lb/..."}, to: []string{"..."}, toExcept: []string{"pkg/lb/...", "pkg/cluster/elbv2/lbwire"}, transitive: true},
		{why: "only the store implementation (pkg/cluster/store/boltstore) imports bbolt: the endpoint works on the store interface, so a replicated store can replace it",
			from: []string{"pkg/cluster/..."}, fromExcept: []string{"pkg/cluster/store/boltstore"}, toExternal: []string{"go.etcd.io/bbolt"}},
		{why: "only pkg/cluster and the log store open a store implementation; everything else takes a store.Store",
			from: []string{"..."}, fromExcept: []string{"pkg/cluster", "pkg/cluster/logstore", "pkg/cluster/store/..."},
			to: []string{"pkg/cluster/store/boltstore", "pkg/cluster/store/etcdstore"}},
		{why: "only the etcd store (pkg/cluster/store/etcdstore) imports the etcd client: watches and elections go through it too",
			from: []string{"..."}, fromExcept: []string{"pkg/cluster/store/etcdstore"}, toExternal: []string{"go.etcd.io/etcd/"}},
		{why: "the web console (pkg/cluster/console) reads the records and acts only through the ECS API's handler that pkg/cluster hands it: of the endpoint it imports awsproto, auth, records, store and metrics (its graphs), never a store implementation, the API packages or the controllers",
			from: []string{"pkg/cluster/console/..."}, to: []string{"pkg/cluster/..."},
			toExcept: []string{"pkg/cluster/console/...", "pkg/cluster/awsproto", "pkg/cluster/auth", "pkg/cluster/records", "pkg/cluster/store", "pkg/cluster/metrics"}},
		{why: "only pkg/cluster mounts the web console (pkg/cluster/console); the benchmarks sign in with its Proof",
			from: []string{"..."}, fromExcept: []string{"pkg/cluster", "pkg/cluster/console/...", "bench/..."}, to: []string{"pkg/cluster/console/..."}},
		{why: "pkg/cluster/scheduler is pure placement logic: it imports no other Berth package",
			from: []string{"pkg/cluster/scheduler"}, to: []string{"..."}, toExcept: []string{"pkg/cluster/scheduler"}, transitive: true},
		{why: "pkg/stats samples containers through pkg/runtime and speaks pkg/api's TCS shapes; it knows nothing of the engine, the endpoint or the config",
			from: []string{"pkg/stats/..."}, to: []string{"..."}, toExcept: []string{"pkg/stats/...", "pkg/runtime/...", "pkg/container", "pkg/api/...", "pkg/logs/...", "internal/version"}, transitive: true},
		{why: "pkg/iam serves credentials and metadata from a store it owns: of Berth it imports pkg/api only; the agent (pkg/agent) wires it to the engine",
			from: []string{"pkg/iam/..."}, to: []string{"..."}, toExcept: []string{"pkg/iam/...", "pkg/api/..."}, transitive: true},
		{why: "pkg/registration speaks to the endpoint for an agent it does not know: it imports pkg/api and pkg/state, never the agent's wiring (pkg/agent) or its engine",
			from: []string{"pkg/registration/..."}, to: []string{"pkg/agent/...", "pkg/engine/...", "pkg/runtime/...", "pkg/network/..."}, transitive: true},
		{why: "nothing below pkg/agent imports the package that wires it, except dev mode (which runs a whole agent)",
			from: []string{"pkg/agent/..."}, fromExcept: []string{"pkg/agent", "pkg/agent/devmode"}, to: []string{"pkg/agent"}},
		{why: "pkg/engine never talks to the endpoint; pkg/registration does",
			from: []string{"pkg/engine/..."}, to: []string{"pkg/registration/..."}, transitive: true},
		{why: "pkg/state holds no business rules: of the Berth packages it imports pkg/api and pkg/container (pure data: the port allocations it keeps for pkg/network) only",
			from: []string{"pkg/state/..."}, to: []string{"..."}, toExcept: []string{"pkg/state/...", "pkg/api/...", "pkg/container"}, transitive: true},
		{why: "pkg/runtime and pkg/logs stay neutral: the runtime uses pkg/logs and the neutral container types (pkg/container) and nothing else of Berth",
			from: []string{"pkg/runtime/...", "pkg/logs/..."}, to: []string{"..."},
			toExcept: []string{"pkg/runtime/...", "pkg/logs/...", "pkg/container", "internal/version"}, transitive: true},
		{why: "pkg/network is the engine's Network as it is, on the neutral types of pkg/container: of Berth it imports pkg/container only",
			from: []string{"pkg/network/..."}, to: []string{"..."}, toExcept: []string{"pkg/network/...", "pkg/container"}, transitive: true},
		{why: "a task passes from the ACS payload to containerd through the engine and what it calls (runtime, network, execution role) without returning to the wiring package: none of them links pkg/agent",
			from: []string{"pkg/engine/...", "pkg/runtime/...", "pkg/network/...", "pkg/container/...", "pkg/execrole/...", "pkg/ecrauth/...", "pkg/iam/..."},
			to:   []string{"pkg/agent/..."}, transitive: true},
		{why: "pkg/execrole does the execution role's work on a task's path (secrets, registry logins) for the engine and the runtime: of Berth it imports pkg/api, pkg/container, pkg/ecrauth and pkg/iam only",
			from: []string{"pkg/execrole/..."}, to: []string{"..."},
			toExcept: []string{"pkg/execrole/...", "pkg/api/...", "pkg/container", "pkg/ecrauth", "pkg/iam"}, transitive: true},
		{why: "pkg/container is pure data shared by the engine and the runtime: it imports no other Berth package",
			from: []string{"pkg/container"}, to: []string{"..."}, toExcept: []string{"pkg/container"}, transitive: true},
		{why: "only pkg/runtime talks to containerd (bench/ measures raw containerd as its baseline, internal/testenv runs the tests' containerd)",
			from: []string{"..."}, fromExcept: []string{"pkg/runtime/...", "bench/...", "internal/testenv/..."},
			toExternal: []string{"github.com/containerd/containerd", "github.com/containerd/errdefs"}},
		{why: "pkg/api and pkg/engine do not link the AWS SDK's ECS client: the ECS API's shapes are the endpoint's (pkg/cluster)",
			from: []string{"pkg/api/...", "pkg/engine/..."}, toExternal: []string{"github.com/aws/aws-sdk-go-v2/service/ecs"}, transitive: true},
		{why: "pkg/runtime, pkg/logs and pkg/network know nothing of AWS",
			from: []string{"pkg/runtime/...", "pkg/logs/...", "pkg/network/..."}, toExternal: []string{"github.com/aws/"}, transitive: true},
		{why: "only cmd/cluster and dev mode read the endpoint's configuration file",
			from: []string{"..."}, fromExcept: []string{"cmd/cluster", "pkg/agent/devmode", "pkg/cluster/config"},
			to: []string{"pkg/cluster/config/..."}},
		{why: "internal/testenv is test-only: only tests and the testenv runner import it",
			from: []string{"..."}, fromExcept: []string{"internal/testenv/...", "bench/..."},
			to: []string{"internal/testenv/..."}},
		{why: "berth-logd is the log daemon and nothing else: it links pkg/logs and no other Berth package, so its memory stays the daemon's",
			from: []string{"cmd/logd"}, to: []string{"..."}, toExcept: []string{"cmd/logd", "pkg/logs", "internal/version"}, transitive: true},
		{why: "internal/testenv must not ship in the berth binaries",
			from: []string{"cmd/agent", "cmd/cluster", "cmd/lb"}, to: []string{"internal/testenv/..."}, transitive: true},
	}
}

// pkg is the part of `go list -json` output the rules need.
type pkg struct {
	ImportPath   string
	Imports      []string
	Deps         []string
	TestImports  []string
	XTestImports []string
}

func matches(path string, patterns []string) bool {
	rel, ok := strings.CutPrefix(path, module)
	if !ok || (rel != "" && rel[0] != '/') {
		return false // not a package of this module
	}
	rel = strings.TrimPrefix(rel, "/")
	for _, p := range patterns {
		if p == "..." {
			return true
		}
		if base, ok := strings.CutSuffix(p, "/..."); ok {
			if rel == base || strings.HasPrefix(rel, base+"/") {
				return true
			}
		} else if rel == p {
			return true
		}
	}
	return false
}

// violations returns one line per forbidden import in pkgs.
func violations(pkgs []pkg, rs []rule) []string {
	var out []string
	for _, r := range rs {
		for _, p := range pkgs {
			if !matches(p.ImportPath, r.from) || matches(p.ImportPath, r.fromExcept) {
				continue
			}
			var imports []string
			if r.transitive {
				imports = p.Deps
			} else {
				imports = slices.Clone(p.Imports)
				if r.includeTestImports {
					imports = append(append(imports, p.TestImports...), p.XTestImports...)
				}
			}
			for _, imp := range imports {
				if imp == p.ImportPath {
					continue // an external test package imports the package under test
				}
				external := false
				for _, prefix := range r.toExternal {
					external = external || strings.HasPrefix(imp, prefix)
				}
				if external || (matches(imp, r.to) && !matches(imp, r.toExcept)) {
					out = append(out, fmt.Sprintf("%s imports %s: %s", p.ImportPath, imp, r.why))
				}
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// listModule runs `go list -e -json` over the whole module. -e keeps a
// package that does not compile right now (another change in progress) from
// hiding the layout of all the others.
func listModule(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-e", "-json", module+"/...")
	cmd.Dir = "../.."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

func TestLayout(t *testing.T) {
	pkgs := listModule(t)
	// Guard against passing vacuously on an empty or mis-rooted listing.
	for _, want := range []string{module + "/pkg/config", module + "/cmd/agent"} {
		if !slices.ContainsFunc(pkgs, func(p pkg) bool { return p.ImportPath == want }) {
			t.Fatalf("go list did not report %s; found %d packages", want, len(pkgs))
		}
	}
	for _, v := range violations(pkgs, rules()) {
		t.Error(v)
	}
}

// TestRulesCatchViolations proves each rule fires on a made-up module that
// breaks it, and stays quiet on one that follows the layout.
func TestRulesCatchViolations(t *testing.T) {
	m := func(rel string) string { return module + "/" + rel }
	bad := []pkg{
		{ImportPath: m("pkg/engine"), Imports: []string{m("pkg/config")}},
		{ImportPath: m("pkg/state"), TestImports: []string{m("pkg/config")}},
		{ImportPath: m("pkg/config"), Deps: []string{"fmt", m("internal/version")}},
		{ImportPath: m("pkg/api/acs"), Deps: []string{m("pkg/runtime")}},
		{ImportPath: m("pkg/runtime"), Deps: []string{m("pkg/api")}},
		{ImportPath: m("pkg/network/cni"), Deps: []string{m("pkg/config")}},
		{ImportPath: m("pkg/cluster/store"), Deps: []string{m("pkg/api"), m("pkg/engine")}},
		{ImportPath: m("pkg/logs"), Imports: []string{m("internal/testenv")}},
		{ImportPath: m("cmd/agent"), Deps: []string{m("internal/testenv")}},
		{ImportPath: m("pkg/engine/health"), Deps: []string{m("pkg/registration")}},
		{ImportPath: m("pkg/state/x"), Deps: []string{m("pkg/api"), m("pkg/engine")}},
		{ImportPath: m("pkg/logs/x"), Deps: []string{"github.com/aws/aws-sdk-go-v2/aws"}},
		{ImportPath: m("pkg/engine/y"), Imports: []string{m("pkg/cluster/config")}},
		{ImportPath: m("pkg/engine/z"), Deps: []string{m("pkg/api"), "github.com/aws/aws-sdk-go-v2/service/ecs/types"}},
		{ImportPath: m("pkg/cluster/acs"), Imports: []string{m("pkg/cluster/ecsapi"), m("pkg/cluster/records")}},
		{ImportPath: m("pkg/cluster/logstore"), Imports: []string{m("pkg/cluster"), m("pkg/cluster/store/boltstore")}},
		{ImportPath: m("pkg/cluster/servicectl"), Deps: []string{m("pkg/cluster/records"), m("pkg/cluster/acs")}},
		{ImportPath: m("pkg/cluster/records"), Imports: []string{"go.etcd.io/bbolt"}},
		{ImportPath: m("pkg/cluster/ecsapi"), Imports: []string{m("pkg/cluster/store/boltstore")}},
		{ImportPath: m("pkg/cluster/scheduler"), Deps: []string{m("pkg/cluster/store")}},
		{ImportPath: m("pkg/cluster/acs"), Imports: []string{"go.etcd.io/etcd/client/v3"}},
		{ImportPath: m("pkg/lb"), Deps: []string{m("pkg/cluster/elbv2/lbwire"), m("pkg/cluster/records")}},
		{ImportPath: m("pkg/cluster/acs"), Imports: []string{m("pkg/cluster/cloudwatchapi")}},
		{ImportPath: m("pkg/cluster/cloudwatchapi"), Imports: []string{m("pkg/cluster/autoscaling")}},
		{ImportPath: m("pkg/cluster/metrics"), Deps: []string{m("pkg/cluster/records"), m("pkg/cluster/acs")}},
		{ImportPath: m("pkg/iam/agentiam"), Deps: []string{m("pkg/api"), m("pkg/iam"), m("pkg/engine")}},
		{ImportPath: m("pkg/cluster/console"), Imports: []string{m("pkg/cluster/records"), m("pkg/cluster/servicectl")}},
		{ImportPath: m("pkg/cluster/autoscaling"), Imports: []string{m("pkg/cluster/console")}},
		{ImportPath: m("pkg/agent"), Imports: []string{m("pkg/runtime"), "github.com/containerd/containerd/namespaces"}},
		{ImportPath: m("pkg/engine/x"), Imports: []string{m("pkg/container"), "github.com/containerd/errdefs"}},
		{ImportPath: m("pkg/container"), Deps: []string{"context", m("pkg/api")}},
		{ImportPath: m("pkg/network"), Deps: []string{m("pkg/container"), m("pkg/state")}},
		{ImportPath: m("pkg/engine/x"), Deps: []string{m("pkg/container"), m("pkg/agent")}},
		{ImportPath: m("pkg/execrole"), Deps: []string{m("pkg/iam"), m("pkg/engine")}},
	}
	got := violations(bad, rules())
	want := []string{
		m("cmd/agent") + " imports " + m("internal/testenv"),
		m("pkg/api/acs") + " imports " + m("pkg/runtime"),
		m("pkg/cluster/store") + " imports " + m("pkg/engine"),
		m("pkg/config") + " imports " + m("internal/version"),
		m("pkg/engine") + " imports " + m("pkg/config"),
		m("pkg/engine/health") + " imports " + m("pkg/registration"),
		m("pkg/logs") + " imports " + m("internal/testenv"),
		m("pkg/network/cni") + " imports " + m("pkg/config"), // knows of ECS
		m("pkg/network/cni") + " imports " + m("pkg/config"), // not neutral
		m("pkg/runtime") + " imports " + m("pkg/api"),        // not neutral
		m("pkg/runtime") + " imports " + m("pkg/api"),        // knows of ECS
		m("pkg/state") + " imports " + m("pkg/config"),
		m("pkg/state/x") + " imports " + m("pkg/engine"),
		m("pkg/logs/x") + " imports github.com/aws/aws-sdk-go-v2/aws",
		m("pkg/engine/y") + " imports " + m("pkg/cluster/config"),
		m("pkg/engine/z") + " imports github.com/aws/aws-sdk-go-v2/service/ecs/types",
		m("pkg/cluster/acs") + " imports " + m("pkg/cluster/ecsapi"),
		m("pkg/cluster/logstore") + " imports " + m("pkg/cluster"),
		m("pkg/cluster/servicectl") + " imports " + m("pkg/cluster/acs"),
		m("pkg/cluster/records") + " imports go.etcd.io/bbolt",
		m("pkg/cluster/ecsapi") + " imports " + m("pkg/cluster/store/boltstore"),
		m("pkg/cluster/scheduler") + " imports " + m("pkg/cluster/store"),
		m("pkg/cluster/acs") + " imports go.etcd.io/etcd/client/v3",
		m("pkg/lb") + " imports " + m("pkg/cluster/records"),
		m("pkg/cluster/acs") + " imports " + m("pkg/cluster/cloudwatchapi"),
		m("pkg/cluster/cloudwatchapi") + " imports " + m("pkg/cluster/autoscaling"),
		m("pkg/cluster/metrics") + " imports " + m("pkg/cluster/acs"),
		m("pkg/iam/agentiam") + " imports " + m("pkg/engine"),
		m("pkg/cluster/console") + " imports " + m("pkg/cluster/servicectl"),
		m("pkg/cluster/autoscaling") + " imports " + m("pkg/cluster/console"),
		m("pkg/agent") + " imports github.com/containerd/containerd/namespaces",
		m("pkg/engine/x") + " imports github.com/containerd/errdefs",
		m("pkg/container") + " imports " + m("pkg/api"),
		m("pkg/network") + " imports " + m("pkg/state"),
		m("pkg/engine/x") + " imports " + m("pkg/agent"),
		m("pkg/execrole") + " imports " + m("pkg/engine"),
	}
	slices.Sort(want)
	if len(got) != len(want) {
		t.Fatalf("got %d violations, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]+": ") {
			t.Errorf("violation %d = %q, want it to start with %q", i, got[i], want[i])
		}
	}

	good := []pkg{
		{ImportPath: m("cmd/agent"), Imports: []string{m("pkg/config"), m("pkg/agent")}, Deps: []string{m("pkg/config"), m("pkg/runtime")}},
		{ImportPath: m("pkg/agent"), Imports: []string{m("pkg/config"), m("pkg/engine")}},
		{ImportPath: m("pkg/cluster/ecsapi"), Imports: []string{m("pkg/api"), m("pkg/cluster/records"), m("pkg/cluster/launch"), m("pkg/cluster/awsproto")},
			Deps: []string{m("pkg/api"), m("pkg/cluster/store"), m("internal/version")}},
		{ImportPath: m("pkg/cluster"), Imports: []string{m("pkg/cluster/ecsapi"), m("pkg/cluster/store/boltstore")}},
		{ImportPath: m("pkg/cluster/store/boltstore"), Imports: []string{"go.etcd.io/bbolt", m("pkg/cluster/store")}},
		{ImportPath: m("pkg/cluster/acs"), Imports: []string{m("pkg/cluster/records")}, XTestImports: []string{m("pkg/cluster/ecsapi")}},
		{ImportPath: m("cmd/cluster"), Imports: []string{m("pkg/config"), m("pkg/cluster")}},
		{ImportPath: m("pkg/runtime"), Imports: []string{"github.com/containerd/containerd", m("pkg/container")},
			Deps: []string{"context", m("internal/version"), m("pkg/container")}, TestImports: []string{m("internal/testenv")}},
		{ImportPath: m("pkg/stats"), Deps: []string{m("pkg/runtime"), m("pkg/container")}, TestImports: []string{"github.com/containerd/containerd"}},
		{ImportPath: m("pkg/engine"), Imports: []string{m("pkg/container"), m("pkg/api")}},
		{ImportPath: m("pkg/network"), Imports: []string{"github.com/containerd/go-cni"}, Deps: []string{m("pkg/container")}},
		{ImportPath: m("bench/cmd/runtime"), Imports: []string{"github.com/containerd/containerd", m("pkg/runtime")}},
		{ImportPath: m("internal/testenv/cmd/berth-testenv"), Imports: []string{m("internal/testenv")}},
		{ImportPath: m("pkg/configuration"), Imports: []string{"github.com/other/pkg/config"}},
		{ImportPath: m("pkg/iam"), Deps: []string{m("pkg/api"), m("pkg/api/arn"), "github.com/aws/aws-sdk-go-v2/aws/arn"}},
		{ImportPath: m("pkg/agent"), Imports: []string{m("pkg/iam"), m("pkg/engine")}},
		{ImportPath: m("pkg/execrole"), Deps: []string{m("pkg/api"), m("pkg/api/arn"), m("pkg/container"), m("pkg/ecrauth"), m("pkg/iam")}},
		{ImportPath: m("pkg/cluster/console"), Imports: []string{m("pkg/cluster/awsproto"), m("pkg/cluster/auth"), m("pkg/cluster/records"),
			m("pkg/cluster/store"), m("pkg/api/arn")}, XTestImports: []string{m("pkg/cluster"), m("internal/testenv")}},
		{ImportPath: m("pkg/cluster"), Imports: []string{m("pkg/cluster/console")}},
	}
	if got := violations(good, rules()); len(got) != 0 {
		t.Errorf("a layout-following module has violations:\n%s", strings.Join(got, "\n"))
	}
}
