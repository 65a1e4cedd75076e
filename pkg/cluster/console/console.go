// Package console is the cluster endpoint's web console, served by the
// endpoint itself at /console/: server-rendered pages of the clusters, a
// cluster (the first rows of its services, instances and tasks) and its
// lists (paged and filtered on the server), a service (deployments,
// events, tasks, load balancer targets, graphs, auto scaling), a task
// (containers, ports, health, logs), a container instance (resources,
// ports, attributes, tasks), the task definitions and the load balancers
// (listeners, rules, target groups and their targets' health), kept live
// by htmx polling with ETags, and the operator's actions (a service's
// desired count and revision, stopping and running tasks, draining, ...).
//
// It reads the records through pkg/cluster/records on the endpoint's
// store.Store and acts only through the ECS API's awsproto.Handler, which
// pkg/cluster hands it: an action from the console is the API operation
// itself, with the signed-in key, the same validation and the same errors.
// Logs and a service's scaling are read the same way, through the log
// store's and Application Auto Scaling's handlers.
// Operators sign in with an access key pair whose secret never leaves the
// browser (session.go); the sessions live, hashed, in the endpoint's store,
// so every replica on etcd knows them (sessions.go). The browser libraries (htmx, uPlot) are vendored
// from their npm packages by `make console-assets` into static/vendor and
// embedded with the rest of static/.
//
// Only pkg/cluster imports it (it mounts Server on /console/); it imports
// awsproto, auth, records, store and metrics of the endpoint (layout rule).
package console

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/cluster/awsproto"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

// Prefix is the path the endpoint serves the console under.
const Prefix = "/console/"

//go:embed templates static
var files embed.FS

// vendored returns the third-party files make console-assets copies into
// static/vendor; without them the pages say how to get them.
func vendored() []string {
	return []string{"static/vendor/htmx.min.js", "static/vendor/uPlot.iife.min.js", "static/vendor/uPlot.min.css"}
}

// KeyLookup finds an access key and its secret: *auth.Keyring.
type KeyLookup interface {
	Lookup(id string) (auth.Key, string, error)
}

var _ KeyLookup = (*auth.Keyring)(nil)

// Options configure a Server.
type Options struct {
	// Store holds the ECS records the pages show.
	Store store.Store
	// Keys signs operators in and checks, on every request, that the
	// session's key is still valid.
	Keys KeyLookup
	// ECS is the ECS API's handler; every action is one of its operations.
	ECS awsproto.Handler
	// Metrics feeds the services' CPU and memory graphs; nil shows none.
	Metrics Statistics
	// Logs is the CloudWatch Logs-compatible API's handler: the task
	// page's container logs are its GetLogEvents. Nil shows none.
	Logs awsproto.Handler
	// Scaling is Application Auto Scaling's handler: the service page's
	// scaling policies, scheduled actions and activities are its
	// Describe operations. Nil shows none.
	Scaling awsproto.Handler
	// Logger gets internal errors (the page shows only that one happened).
	Logger *slog.Logger
	// Now is the clock of sessions and sign-in challenges; nil means
	// time.Now.
	Now func() time.Time
}

// Server serves the console.
type Server struct {
	o        Options
	mux      *http.ServeMux
	pages    map[string]*template.Template
	sessions *sessions
	// missingAssets lists the vendored files this build lacks.
	missingAssets []string
}

var _ http.Handler = (*Server)(nil)

// New returns a Server; Store, Keys and ECS are required.
func New(o Options) (*Server, error) {
	if o.Store == nil || o.Keys == nil || o.ECS == nil {
		return nil, errors.New("console: Store, Keys and ECS are required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Server{o: o}
	var err error
	if s.pages, err = parsePages(); err != nil {
		return nil, err
	}
	s.sessions = newSessions(o.Store, o.Now)
	for _, f := range vendored() {
		if _, err := fs.Stat(files, f); err != nil {
			s.missingAssets = append(s.missingAssets, strings.TrimPrefix(f, "static/"))
		}
	}
	static, err := fs.Sub(files, "static")
	if err != nil {
		return nil, fmt.Errorf("console: static files: %w", err)
	}
	sf, err := newStaticFiles(static)
	if err != nil {
		return nil, err
	}
	s.mux = s.routes(sf)
	return s, nil
}

// MissingAssets lists the vendored browser libraries this build was made
// without (make console-assets was not run): the console then works
// without live updates and graphs.
func (s *Server) MissingAssets() []string { return s.missingAssets }

func (s *Server) routes(static staticFiles) *http.ServeMux {
	m := http.NewServeMux()
	m.Handle("GET /console/static/{file...}", static)
	m.HandleFunc("GET /console/signin", s.signInPage)
	m.HandleFunc("POST /console/signin", s.signIn)
	m.HandleFunc("POST /console/signout", s.signedIn(s.signOut))
	m.HandleFunc("GET /console/{$}", s.signedIn(s.clustersPage))
	m.HandleFunc("GET /console/clusters/{cluster}", s.signedIn(s.clusterPage))
	m.HandleFunc("GET /console/clusters/{cluster}/services/{service}", s.signedIn(s.servicePage))
	m.HandleFunc("GET /console/clusters/{cluster}/services/{service}/metrics", s.signedIn(s.serviceMetrics))
	m.HandleFunc("GET /console/clusters/{cluster}/services/{service}/requests", s.signedIn(s.serviceRequests))
	m.HandleFunc("POST /console/clusters/{cluster}/services/{service}/desired-count", s.signedIn(s.acting(s.setDesiredCount)))
	m.HandleFunc("POST /console/clusters/{cluster}/services/{service}/task-definition", s.signedIn(s.acting(s.updateRevision)))
	m.HandleFunc("POST /console/clusters/{cluster}/services/{service}/force-deployment", s.signedIn(s.acting(s.forceDeployment)))
	m.HandleFunc("GET /console/clusters/{cluster}/tasks", s.signedIn(s.tasksPage))
	m.HandleFunc("GET /console/clusters/{cluster}/services", s.signedIn(s.servicesPage))
	m.HandleFunc("GET /console/clusters/{cluster}/instances", s.signedIn(s.instancesPage))
	m.HandleFunc("GET /console/clusters/{cluster}/instances/{instance}", s.signedIn(s.instancePage))
	m.HandleFunc("POST /console/clusters/{cluster}/instance-state", s.signedIn(s.acting(s.setInstanceState)))
	m.HandleFunc("GET /console/clusters/{cluster}/tasks/{task}", s.signedIn(s.taskPage))
	m.HandleFunc("GET /console/clusters/{cluster}/tasks/{task}/logs", s.signedIn(s.containerLogs))
	m.HandleFunc("POST /console/clusters/{cluster}/stop-task", s.signedIn(s.acting(s.stopTask)))
	m.HandleFunc("GET /console/load-balancers", s.signedIn(s.loadBalancersPage))
	m.HandleFunc("GET /console/load-balancers/{lb}", s.signedIn(s.loadBalancerPage))
	m.HandleFunc("GET /console/target-groups/{tg}", s.signedIn(s.targetGroupPage))
	m.HandleFunc("GET /console/task-definitions", s.signedIn(s.familiesPage))
	m.HandleFunc("GET /console/task-definitions/{family}", s.signedIn(s.familyPage))
	m.HandleFunc("GET /console/task-definitions/{family}/{revision}", s.signedIn(s.revisionPage))
	m.HandleFunc("POST /console/task-definitions/{family}/{revision}/run", s.signedIn(s.acting(s.runTask)))
	m.HandleFunc("/console/", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) })
	return m
}

// contentSecurityPolicy allows only the console's own scripts, styles and
// requests: no inline script or style, no other origin, no framing.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// ServeHTTP serves every path under Prefix.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	if !strings.HasPrefix(r.URL.Path, "/console/static/") {
		h.Set("Cache-Control", "no-store")
	}
	s.mux.ServeHTTP(w, r)
}

// page is what every full page's layout needs beside the page's own data.
type page struct {
	Title string
	// Crumbs lead from the clusters to this page; the last is the page.
	Crumbs []crumb
	// Session is nil on the sign-in page.
	Session *session
	// MissingAssets are the vendored files this build lacks.
	MissingAssets []string
	// Flash is a message from the action that led here.
	Flash *flash
	Data  any
}

type crumb struct{ Name, Href string }

// flash is an action's outcome shown at the top of a page.
type flash struct {
	Error   bool
	Message string
}

// CanAct reports whether the page shows the action controls.
func (p *page) CanAct() bool { return p.Session != nil && p.Session.canAct() }

// parsePages parses each page's template with the layout it fills.
func parsePages() (map[string]*template.Template, error) {
	names, err := fs.Glob(files, "templates/page_*.html")
	if err != nil {
		return nil, fmt.Errorf("console: templates: %w", err)
	}
	pages := map[string]*template.Template{}
	for _, n := range names {
		t, err := template.New("layout.html").Funcs(templateFuncs()).ParseFS(files, "templates/layout.html", n)
		if err != nil {
			return nil, fmt.Errorf("console: templates: %w", err)
		}
		pages[strings.TrimSuffix(strings.TrimPrefix(n, "templates/page_"), ".html")] = t
	}
	return pages, nil
}

// fragmentPage is a page set whose layout.html defines the fragments
// every page shares ("flash"); any page set would do.
const fragmentPage = "clusters"

// render writes the template name of page set pg: "layout.html" for the
// whole page, or one of its fragments (an htmx request's answer).
func (s *Server) render(w http.ResponseWriter, status int, pg, name string, p *page) {
	b, err := s.execute(pg, name, p)
	if err != nil {
		s.internalError(w, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(b)
}

func (s *Server) execute(pg, name string, p *page) ([]byte, error) {
	t, ok := s.pages[pg]
	if !ok {
		return nil, fmt.Errorf("no page %q", pg)
	}
	p.MissingAssets = s.missingAssets
	var b bytes.Buffer
	if err := t.ExecuteTemplate(&b, name, p); err != nil {
		return nil, fmt.Errorf("render %s/%s: %w", pg, name, err)
	}
	return b.Bytes(), nil
}

// renderPage answers a page that has a live part: the whole page, or the
// live part alone for htmx's poll (?part=live).
func (s *Server) renderPage(w http.ResponseWriter, r *http.Request, pg string, p *page) {
	if r.URL.Query().Get("part") == "live" {
		s.renderPolled(w, r, pg, "live", p)
		return
	}
	s.render(w, http.StatusOK, pg, "layout.html", p)
}

// renderPolled answers a polled fragment with an ETag of its bytes; a
// poll whose If-None-Match still holds gets 304 without a body, and the
// page keeps what it shows (static/console.js sends the tag back, htmx is
// configured not to swap on 304). The fragment is rendered either way:
// what the tag saves is the transfer and the browser's swap.
func (s *Server) renderPolled(w http.ResponseWriter, r *http.Request, pg, name string, p *page) {
	b, err := s.execute(pg, name, p)
	if err != nil {
		s.internalError(w, err)
		return
	}
	tag := etagOf(b)
	h := w.Header()
	h.Set("ETag", tag)
	if r.Header.Get("If-None-Match") == tag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

// internalError logs err and tells the browser only that something failed.
func (s *Server) internalError(w http.ResponseWriter, err error) {
	s.o.Logger.Error("console", "err", err)
	http.Error(w, "internal error (the endpoint's log has the details)", http.StatusInternalServerError)
}

// storeError answers a request the store failed: 503 saying so when the
// replicated store has no quorum, otherwise an internal error.
func (s *Server) storeError(w http.ResponseWriter, err error) {
	if errors.Is(err, store.ErrUnavailable) {
		s.o.Logger.Warn("console", "err", err)
		http.Error(w, "the cluster's store is unavailable; try again when it has recovered", http.StatusServiceUnavailable)
		return
	}
	s.internalError(w, err)
}

// isHTMX reports whether htmx sent r (it then wants a fragment).
func isHTMX(r *http.Request) bool { return r.Header.Get("HX-Request") == "true" }
