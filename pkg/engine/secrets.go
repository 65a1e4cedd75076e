package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/berth-dev/berth/pkg/container"
	"github.com/berth-dev/berth/pkg/logship"
)

// Secrets: a container's secrets (environment variables) and its log
// driver's secretOptions are fetched through Options.Secrets in the
// container's create step, as the ECS agent resolves them before it
// creates the container. The values live only in the runtime spec handed
// to Create and, for log options, in the runner's memory (logSecrets):
// the task's record keeps the references alone. After an agent restart
// the log options of a running container are fetched again before its
// log shipping resumes.

// reasonSecrets is how ECS words a task stopped because a secret could not
// be fetched.
const reasonSecrets = prefixResourceInit + "unable to pull secrets or registry auth: "

// logSecretsTimeout bounds fetching a running container's log options
// after a restart.
const logSecretsTimeout = time.Minute

// fetchSecrets fetches refs with the task's execution role and returns the
// environment variables to add (NAME=value) and the log driver options
// (nil when there are none).
func fetchSecrets(ctx context.Context, src SecretSource, taskARN string, refs []container.SecretRef) (env []string, logOpts map[string]string, err error) {
	if len(refs) == 0 {
		return nil, nil, nil
	}
	if src == nil {
		return nil, nil, fmt.Errorf("secret %s: this agent has no way to fetch secrets", refs[0].Name)
	}
	vals, err := src.Fetch(ctx, taskARN, refs)
	if err != nil {
		return nil, nil, err
	}
	if len(vals) != len(refs) {
		return nil, nil, fmt.Errorf("fetch secrets: %d values for %d secrets", len(vals), len(refs))
	}
	for i, ref := range refs {
		if ref.Log {
			if logOpts == nil {
				logOpts = map[string]string{}
			}
			logOpts[ref.Name] = vals[i]
			continue
		}
		env = append(env, ref.Name+"="+vals[i])
	}
	return env, logOpts, nil
}

// withLogSecrets returns lc with the secret options added, checked as
// options of its driver. An error names the option and never shows its
// value.
func withLogSecrets(lc container.LogConfig, opts map[string]string) (container.LogConfig, error) {
	if len(opts) == 0 {
		return lc, nil
	}
	merged := maps.Clone(lc.Options)
	if merged == nil {
		merged = map[string]string{}
	}
	maps.Copy(merged, opts)
	driver := lc.Driver
	if driver == "" {
		driver = logship.DriverJSONFile
	}
	if err := logship.ValidateOptions(driver, merged); err != nil {
		msg := err.Error()
		for k, v := range opts {
			if v != "" {
				msg = strings.ReplaceAll(msg, v, "<value of secret "+k+">")
			}
		}
		return lc, errors.New("logConfiguration.secretOptions: " + msg)
	}
	lc.Options = merged
	return lc, nil
}

// logSecretRefs returns the log driver secretOptions of a container.
func logSecretRefs(d *ContainerDef) []container.SecretRef {
	var out []container.SecretRef
	for _, s := range d.Secrets {
		if s.Log {
			out = append(out, s)
		}
	}
	return out
}

// fetchLogSecrets fetches a running container's log options in the
// background (after a restart, when the create step's values are gone)
// and hands them to the select loop, which then starts its log shipping.
func (r *taskRunner) fetchLogSecrets(name string, refs []container.SecretRef) {
	src, arn, ctx := r.e.opts.Secrets, r.st.Def.ARN, r.ctx
	r.ops.Add(1)
	go func() {
		defer r.ops.Done()
		fctx, cancel := context.WithTimeout(ctx, logSecretsTimeout)
		defer cancel()
		_, opts, err := fetchSecrets(fctx, src, arn, refs)
		select {
		case r.events <- event{kind: evLogSecrets, container: name, logSecrets: opts, err: err}:
		case <-ctx.Done():
		}
	}()
}
