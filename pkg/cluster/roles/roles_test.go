package roles

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/berth-dev/berth/pkg/api"
)

const (
	appRole  = "arn:aws:iam::123456789012:role/app"
	execRole = "arn:aws:iam::123456789012:role/exec"
	taskArn  = "arn:aws:ecs:us-east-1:123456789012:task/c/0123456789abcdef"
)

func staticRole(arn string) RoleConfig {
	return RoleConfig{Arn: arn, Source: SourceStatic, AccessKeyID: "AKIASTATIC", SecretAccessKey: "static-secret"}
}

func TestConfigValidation(t *testing.T) {
	cases := []struct {
		name string
		role RoleConfig
		want string
	}{
		{"bad arn", RoleConfig{Arn: "arn:aws:iam::1:user/x", Source: SourceStatic}, "is not an IAM role ARN"},
		{"static without keys", RoleConfig{Arn: appRole, Source: SourceStatic}, "needs access_key_id and secret_access_key"},
		{"assume-role without base credentials", RoleConfig{Arn: appRole, Source: SourceAssumeRole}, "needs the endpoint's own AWS credentials"},
		{"unknown source", RoleConfig{Arn: appRole, Source: "magic"}, `source "magic"`},
		{"bad duration", RoleConfig{Arn: appRole, Source: SourceStatic, AccessKeyID: "a", SecretAccessKey: "b", Duration: "30s"}, "between 1m and 12h"},
	}
	for _, c := range cases {
		if _, err := New(Options{Roles: []RoleConfig{c.role}}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: want an error containing %q, got %v", c.name, c.want, err)
		}
	}
	if _, err := New(Options{Roles: []RoleConfig{staticRole(appRole), staticRole(appRole)}}); err == nil || !strings.Contains(err.Error(), "declared twice") {
		t.Errorf("duplicate role: got %v", err)
	}
}

func TestValidateTaskDefinition(t *testing.T) {
	is, err := New(Options{Roles: []RoleConfig{staticRole(appRole), staticRole(execRole)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := is.ValidateTaskDefinition(appRole, execRole); err != nil {
		t.Fatalf("declared roles refused: %v", err)
	}
	if err := is.ValidateTaskDefinition("", ""); err != nil {
		t.Fatalf("no roles refused: %v", err)
	}
	err = is.ValidateTaskDefinition(appRole, "arn:aws:iam::123456789012:role/nope")
	var ip *InvalidParameterError
	if !errors.As(err, &ip) || !strings.Contains(ip.Message, "executionRoleArn arn:aws:iam::123456789012:role/nope is not a role declared") {
		t.Fatalf("undeclared execution role: got %v", err)
	}
}

func TestStaticIssueFreshIDs(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	is, err := New(Options{Roles: []RoleConfig{staticRole(appRole)}, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	a, err := is.Issue(context.Background(), Request{RoleArn: appRole, TaskArn: taskArn})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := is.Issue(context.Background(), Request{RoleArn: appRole, TaskArn: taskArn})
	if a.CredentialsID == "" || a.CredentialsID == b.CredentialsID {
		t.Fatalf("placement must make fresh ids: %q %q", a.CredentialsID, b.CredentialsID)
	}
	if a.AccessKeyID != "AKIASTATIC" || a.SecretAccessKey != "static-secret" || a.Expiration != "2030-01-01T01:00:00Z" || a.RoleArn != appRole {
		t.Fatalf("static credentials: %+v (secret %q)", a, a.SecretAccessKey)
	}
	r, _ := is.Issue(context.Background(), Request{RoleArn: appRole, CredentialsID: a.CredentialsID, TaskArn: taskArn})
	if r.CredentialsID != a.CredentialsID {
		t.Fatalf("refresh changed the id: %q -> %q", a.CredentialsID, r.CredentialsID)
	}
	if _, err := is.Issue(context.Background(), Request{RoleArn: execRole}); !errors.Is(err, ErrUnknownRole) {
		t.Fatalf("undeclared role: want ErrUnknownRole, got %v", err)
	}
}

// fakeSTS speaks the STS Query API's AssumeRole, enough for the real SDK
// client to parse, and records what it was asked.
type fakeSTS struct {
	mu    sync.Mutex
	forms []url.Values
	auth  []string
}

func (f *fakeSTS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	f.mu.Lock()
	f.forms = append(f.forms, r.PostForm)
	f.auth = append(f.auth, r.Header.Get("Authorization"))
	n := len(f.forms)
	f.mu.Unlock()
	if r.PostForm.Get("Action") != "AssumeRole" {
		w.WriteHeader(400)
		fmt.Fprint(w, `<ErrorResponse><Error><Type>Sender</Type><Code>InvalidAction</Code><Message>no</Message></Error><RequestId>1</RequestId></ErrorResponse>`)
		return
	}
	if r.PostForm.Get("RoleArn") == "arn:aws:iam::123456789012:role/denied" {
		w.WriteHeader(403)
		fmt.Fprint(w, `<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>not allowed</Message></Error><RequestId>2</RequestId></ErrorResponse>`)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	fmt.Fprintf(w, `<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult>
<Credentials><AccessKeyId>ASIAASSUMED%d</AccessKeyId><SecretAccessKey>assumed-secret</SecretAccessKey><SessionToken>assumed-token</SessionToken><Expiration>2030-06-01T12:00:00Z</Expiration></Credentials>
<AssumedRoleUser><AssumedRoleId>AROA:s</AssumedRoleId><Arn>%s</Arn></AssumedRoleUser></AssumeRoleResult>
<ResponseMetadata><RequestId>r%d</RequestId></ResponseMetadata></AssumeRoleResponse>`, n, r.PostForm.Get("RoleArn"), n)
}

func TestAssumeRoleThroughSDK(t *testing.T) {
	fake := &fakeSTS{}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	denied := "arn:aws:iam::123456789012:role/denied"
	is, err := New(Options{
		Roles: []RoleConfig{
			{Arn: appRole, Source: SourceAssumeRole, STSEndpoint: srv.URL, Region: "eu-west-1", Duration: "30m", ExternalID: "ext-42"},
			{Arn: denied, Source: SourceAssumeRole, STSEndpoint: srv.URL},
		},
		BaseCredentials: credentials.NewStaticCredentialsProvider("AKIAENDPOINTBASE", "base-secret", ""),
	})
	if err != nil {
		t.Fatal(err)
	}
	c, err := is.Issue(context.Background(), Request{RoleArn: appRole, TaskArn: taskArn})
	if err != nil {
		t.Fatal(err)
	}
	if c.AccessKeyID != "ASIAASSUMED1" || c.SecretAccessKey != "assumed-secret" || c.SessionToken != "assumed-token" ||
		c.Expiration != "2030-06-01T12:00:00Z" || c.CredentialsID == "" {
		t.Fatalf("assumed credentials: %+v", c)
	}
	f := fake.forms[0]
	want := map[string]string{"RoleArn": appRole, "ExternalId": "ext-42", "DurationSeconds": "1800", "RoleSessionName": "berth-0123456789abcdef", "Version": "2011-06-15"}
	for k, v := range want {
		if f.Get(k) != v {
			t.Errorf("AssumeRole %s: want %q, got %q", k, v, f.Get(k))
		}
	}
	if a := fake.auth[0]; !strings.Contains(a, "Credential=AKIAENDPOINTBASE/") || !strings.Contains(a, "/eu-west-1/sts/aws4_request") {
		t.Errorf("AssumeRole not signed with the endpoint's credentials for eu-west-1: %q", a)
	}
	if _, err := is.Issue(context.Background(), Request{RoleArn: denied, TaskArn: taskArn}); err == nil || !strings.Contains(err.Error(), "AccessDenied") {
		t.Fatalf("STS refusal: want an error naming AccessDenied, got %v", err)
	}
}

// recordingSender is the ACS server's side as far as the Refresher sees.
type recordingSender struct {
	mu   sync.Mutex
	sent []*api.IAMRoleCredentialsMessage
	fail bool
	ch   chan *api.IAMRoleCredentialsMessage
}

func (s *recordingSender) SendCredentials(_ context.Context, instance string, m *api.IAMRoleCredentialsMessage) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return errors.New("agent not connected")
	}
	if instance != "ci-1" {
		return fmt.Errorf("sent to %s", instance)
	}
	s.sent = append(s.sent, m)
	if s.ch != nil {
		s.ch <- m
	}
	return nil
}

func (s *recordingSender) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sent)
}

type manualClock struct{ now time.Time }

func (c *manualClock) Now() time.Time                       { return c.now }
func (c *manualClock) After(time.Duration) <-chan time.Time { return nil }

// TestRefreshUntilAckedThenStop drives the refresher's steps with a manual
// clock: the schedule logic is what is under test.
func TestRefreshUntilAckedThenStop(t *testing.T) {
	ctx := context.Background()
	clock := &manualClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	is, err := New(Options{Roles: []RoleConfig{staticRole(appRole)}, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	sender := &recordingSender{}
	r, err := NewRefresher(RefresherOptions{Issuer: is, Sender: sender, RefreshBefore: 15 * time.Minute, RetryInterval: 10 * time.Second, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	placed, _ := is.Issue(ctx, Request{RoleArn: appRole, TaskArn: taskArn})
	r.Track(Tracked{ClusterArn: "cl", ContainerInstanceArn: "ci-1", TaskArn: taskArn, RoleType: api.RoleTypeTaskApplication, Credentials: placed})

	if wait := r.step(ctx); wait != 45*time.Minute || sender.count() != 0 {
		t.Fatalf("after placement: want nothing sent and a wait of 45m, got %d sent, wait %v", sender.count(), wait)
	}
	clock.now = clock.now.Add(45 * time.Minute)
	r.step(ctx)
	if sender.count() != 1 {
		t.Fatalf("at expiry-15m: want one refresh sent, got %d", sender.count())
	}
	m := sender.sent[0]
	if m.RoleCredentials.CredentialsID != placed.CredentialsID || m.RoleCredentials.Expiration != "2030-01-01T01:45:00Z" ||
		m.TaskArn != taskArn || m.RoleType != api.RoleTypeTaskApplication || m.MessageID == "" {
		t.Fatalf("refresh message: %+v creds %+v", m, m.RoleCredentials)
	}
	// Not acknowledged: resent at the retry pace with the same message id.
	clock.now = clock.now.Add(10 * time.Second)
	r.step(ctx)
	if sender.count() != 2 || sender.sent[1].MessageID != m.MessageID {
		t.Fatalf("unacknowledged refresh: want a resend of %s, got %d sends", m.MessageID, sender.count())
	}
	r.Ack(&api.IAMRoleCredentialsAckRequest{MessageID: m.MessageID, CredentialsID: placed.CredentialsID})
	if r.Pending(taskArn, api.RoleTypeTaskApplication) {
		t.Fatal("still pending after the ack")
	}
	if got := r.Current(taskArn, api.RoleTypeTaskApplication); got.Expiration != "2030-01-01T01:45:00Z" {
		t.Fatalf("current credentials after refresh: %+v", got)
	}
	clock.now = clock.now.Add(10 * time.Minute)
	r.step(ctx)
	if sender.count() != 2 {
		t.Fatalf("acknowledged refresh resent: %d sends", sender.count())
	}
	// An agent restart: the endpoint resends the current credentials.
	r.ResendInstance("ci-1")
	r.step(ctx)
	if sender.count() != 3 || sender.sent[2].RoleCredentials.Expiration != "2030-01-01T01:45:00Z" {
		t.Fatalf("resend after reconnect: %d sends", sender.count())
	}
	// A send failure (agent away) is retried.
	sender.fail = true
	clock.now = clock.now.Add(10 * time.Second)
	r.step(ctx)
	sender.fail = false
	clock.now = clock.now.Add(10 * time.Second)
	r.step(ctx)
	if sender.count() != 4 {
		t.Fatalf("send after a failure: want 4 sends, got %d", sender.count())
	}
	r.Untrack(taskArn)
	clock.now = clock.now.Add(2 * time.Hour)
	if wait := r.step(ctx); wait != -1 || sender.count() != 4 {
		t.Fatalf("after the task stopped: want no sends and nothing scheduled, got %d sends, wait %v", sender.count(), wait)
	}
}

// TestRunSendsOnItsOwn runs the real loop on the real clock with
// credentials that expire in two seconds.
func TestRunSendsOnItsOwn(t *testing.T) {
	is, err := New(Options{Roles: []RoleConfig{staticRole(appRole)}})
	if err != nil {
		t.Fatal(err)
	}
	sender := &recordingSender{ch: make(chan *api.IAMRoleCredentialsMessage, 10)}
	r, _ := NewRefresher(RefresherOptions{Issuer: is, Sender: sender})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	soon := &api.IAMRoleCredentials{CredentialsID: "cid", RoleArn: appRole, Expiration: time.Now().Add(2 * time.Second).UTC().Format(time.RFC3339)}
	r.Track(Tracked{ContainerInstanceArn: "ci-1", TaskArn: taskArn, RoleType: api.RoleTypeTaskApplication, Credentials: soon})
	select {
	case m := <-sender.ch:
		if m.RoleCredentials.CredentialsID != "cid" || m.RoleCredentials.AccessKeyID != "AKIASTATIC" {
			t.Fatalf("refresh: %+v", m.RoleCredentials)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no refresh sent within 30s for credentials expiring in 2s")
	}
}

// endedSender answers every send with ErrTaskEnded, as the ACS server does
// for a task that stopped on its own or was deleted.
type endedSender struct{ calls int }

func (s *endedSender) SendCredentials(context.Context, string, *api.IAMRoleCredentialsMessage) error {
	s.calls++
	return fmt.Errorf("send credentials: %w", ErrTaskEnded)
}

// TestRefreshUntracksEndedTask proves that a task the sender reports as
// ended is untracked at its first refresh and never refreshed again.
func TestRefreshUntracksEndedTask(t *testing.T) {
	ctx := context.Background()
	clock := &manualClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	is, err := New(Options{Roles: []RoleConfig{staticRole(appRole)}, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	sender := &endedSender{}
	r, err := NewRefresher(RefresherOptions{Issuer: is, Sender: sender, RefreshBefore: 15 * time.Minute, RetryInterval: 10 * time.Second, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	placed, _ := is.Issue(ctx, Request{RoleArn: appRole, TaskArn: taskArn})
	r.Track(Tracked{ClusterArn: "cl", ContainerInstanceArn: "ci-1", TaskArn: taskArn, RoleType: api.RoleTypeTaskApplication, Credentials: placed})
	clock.now = clock.now.Add(45 * time.Minute)
	if wait := r.step(ctx); wait != -1 {
		t.Fatalf("after the sender reported the task ended: want nothing tracked (wait -1), got wait %v", wait)
	}
	if c := r.Current(taskArn, api.RoleTypeTaskApplication); c != nil {
		t.Fatalf("ended task still tracked: %+v", c)
	}
	clock.now = clock.now.Add(time.Hour)
	r.step(ctx)
	if sender.calls != 1 {
		t.Fatalf("want exactly one send attempt for an ended task, got %d", sender.calls)
	}
}
