// Command credprobe is built (static) by the task role tests and run inside
// task containers. With PROBE_URL it writes "<status> <body>" of a plain GET;
// otherwise it loads credentials through aws-sdk-go-v2's default chain and
// writes "KEY <access key id> <source>". A failure writes "ERR <error>". The
// result goes to the file named by PROBE_OUT, or to standard output (one
// line) when PROBE_OUT is empty. PROBE_TIMEOUT (a Go duration, default 30s)
// bounds the whole probe.
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
)

func main() {
	timeout := 30 * time.Second
	if v := os.Getenv("PROBE_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			fmt.Fprintln(os.Stderr, "PROBE_TIMEOUT:", err)
			os.Exit(2)
		}
		timeout = d
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	result := probe(ctx)
	out := os.Getenv("PROBE_OUT")
	if out == "" {
		fmt.Println(strings.ReplaceAll(result, "\n", " "))
		return
	}
	if err := os.WriteFile(out, []byte(result), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func probe(ctx context.Context) string {
	if u := os.Getenv("PROBE_URL"); u != "" {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return "ERR " + err.Error()
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return "ERR " + err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return fmt.Sprintf("%d %s", resp.StatusCode, b)
	}
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion("us-east-1"))
	if err != nil {
		return "ERR " + err.Error()
	}
	c, err := cfg.Credentials.Retrieve(ctx)
	if err != nil {
		return "ERR " + err.Error()
	}
	return "KEY " + c.AccessKeyID + " " + c.Source
}
