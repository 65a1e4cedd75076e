// Command berth-cluster is Berth's self-contained ECS-compatible cluster endpoint.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/berth-dev/berth/internal/version"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("berth-cluster", flag.ContinueOnError)
	fs.SetOutput(stderr)
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: berth-cluster [--version] <command>\n\ncommands:\n  serve   run the cluster endpoint (not yet)\n")
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *showVersion {
		fmt.Fprintf(stdout, "berth-cluster %s\n", version.Version)
		return 0
	}
	fs.Usage()
	return 2
}
