package agent_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/engine"
)

// TestTaskRoleCredentials runs a bridge task with a role through the
// agent: its container fetches the credentials and its task metadata
// through 169.254.170.2; after an agent restart it gets 503 until the
// credentials are delivered again; a refresh frame replaces them.
func TestTaskRoleCredentials(t *testing.T) {
	h := newHostEnv(t)
	cfg := h.config(t)
	withTaskRoles(t, cfg)

	reg := testenv.Registry(t)
	loop := `while true; do wget -q -O - http://169.254.170.2$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI 2>&1; echo; ` +
		`wget -q -O - $ECS_CONTAINER_METADATA_URI_V4/task 2>&1; echo; sleep 0.3; done`
	img := testenv.BuildImage(t, reg, "agent/iamprobe", testenv.ImageSpec{Cmd: []string{"/bin/sh", "-c", loop}})
	arn := "arn:aws:ecs:us-east-1:000000000000:task/lab/" + randomHex(16)
	creds := &api.IAMRoleCredentials{CredentialsID: "agent-iam-" + randomHex(8), RoleArn: "arn:aws:iam::000000000000:role/probe",
		AccessKeyID: "ASIAAGENTIAMFIRST", SecretAccessKey: "agent-secret-never-logged", SessionToken: "agent-token-never-logged",
		Expiration: time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}
	payload := func(c *api.IAMRoleCredentials, desired string) *api.PayloadMessage {
		return &api.PayloadMessage{MessageID: randomHex(8), ClusterArn: "arn:aws:ecs:us-east-1:000000000000:cluster/lab",
			Tasks: []*api.Task{{Arn: arn, Family: "iamprobe", Version: "1", DesiredStatus: desired, NetworkMode: "bridge",
				RoleCredentials: c,
				Containers:      []*api.Container{{Name: "probe", Image: img.Ref, Essential: true, Memory: 64}}}}}
	}

	a, stop := h.startAgent(t, cfg)
	handle(t, a, payload(creds, "RUNNING"))
	st := waitTask(t, a, arn, "RUNNING", 2*time.Minute, func(st engine.TaskState) bool { return st.KnownStatus == engine.TaskRunning })
	log := &containerLog{t: t, path: container(st, "probe").LogPath}
	log.wait(`\"AccessKeyId\":\"ASIAAGENTIAMFIRST\"`, time.Minute)
	log.wait(`\"TaskARN\":\"`+arn+`\"`, time.Minute)

	// A refresh frame from ACS replaces the credentials.
	refreshed := *creds
	refreshed.AccessKeyID = "ASIAAGENTIAMREFRESH"
	ack, err := a.HandleCredentials(context.Background(), &api.IAMRoleCredentialsMessage{MessageID: "refresh-1", TaskArn: arn,
		RoleType: api.RoleTypeTaskApplication, RoleCredentials: &refreshed})
	if err != nil || ack.MessageID != "refresh-1" || ack.CredentialsID != creds.CredentialsID {
		t.Fatalf("refresh: %+v %v", ack, err)
	}
	log.wait(`ASIAAGENTIAMREFRESH`, time.Minute)

	// Restart: the id is known again from the task's state, the secrets are not.
	stop()
	a2, _ := h.startAgent(t, cfg)
	log.wait("503 Service Unavailable", time.Minute)
	final := *creds
	final.AccessKeyID = "ASIAAGENTIAMRESENT"
	handle(t, a2, payload(&final, "RUNNING")) // ACS redelivers the task with its credentials
	log.wait(`ASIAAGENTIAMRESENT`, time.Minute)

	handle(t, a2, payload(nil, "STOPPED"))
	waitTask(t, a2, arn, "STOPPED", time.Minute, func(st engine.TaskState) bool { return st.KnownStatus == engine.TaskStopped })

	b, err := os.ReadFile(cfg.IAM.AuditLogFile)
	if err != nil {
		t.Fatal(err)
	}
	audit := string(b)
	for _, secret := range []string{creds.SecretAccessKey, creds.SessionToken, creds.CredentialsID} {
		if strings.Contains(audit, secret) {
			t.Fatalf("audit log contains %q", secret)
		}
	}
	for _, want := range []string{" 200 ", " 503 ", `"/v2/credentials"`, arn + " GetCredentials"} {
		if !strings.Contains(audit, want) {
			t.Errorf("audit log lacks %q:\n%s", want, audit[max(0, len(audit)-3000):])
		}
	}
}
