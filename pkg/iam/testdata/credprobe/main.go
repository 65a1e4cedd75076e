// Command credprobe is built (static) by pkg/iam's end-to-end test and run
// inside task containers. With PROBE_URL it writes "<status> <body>" of a
// plain GET; otherwise it loads credentials through aws-sdk-go-v2's default
// chain and writes "KEY <access key id> <source>" or "ERR <error>". The
// result goes to the file named by PROBE_OUT.
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := os.WriteFile(os.Getenv("PROBE_OUT"), []byte(probe(ctx)), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func probe(ctx context.Context) string {
	if u := os.Getenv("PROBE_URL"); u != "" {
		resp, err := http.Get(u)
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
