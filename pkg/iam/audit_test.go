package iam

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func auditLine(i int) auditRecord {
	return auditRecord{at: time.Unix(1700000000, 0), status: 200, source: "10.0.0.1:1", path: V2CredentialsPath,
		userAgent: "test", roleArn: "arn:aws:iam::123456789012:role/r", taskArn: fmt.Sprintf("task-%d", i), event: EventGetCredentials}
}

// TestAuditFileCloseWritesEverything: lines logged concurrently, many
// buffers' worth, are all in the file after Close (a clean stop loses
// nothing), each once, and each writer's lines in its order; lines logged
// after Close are dropped, and a second Close does nothing.
func TestAuditFileCloseWritesEverything(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	a, err := OpenAuditLog(path)
	if err != nil {
		t.Fatal(err)
	}
	const writers, each = 4, 1000 // about 4 buffers
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				a.log(auditLine(w*each + i))
			}
		}()
	}
	wg.Wait()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	a.log(auditLine(-1))
	if err := a.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != writers*each {
		t.Fatalf("file has %d lines, want %d (every line logged before Close, none after)", len(lines), writers*each)
	}
	last := map[int]int{}
	for w := range writers {
		last[w] = -1
	}
	for _, l := range lines {
		var n int
		if _, err := fmt.Sscanf(l[strings.Index(l, "task-"):], "task-%d", &n); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		w := n / each
		if n <= last[w] {
			t.Fatalf("writer %d's line %d came after its line %d", w, n, last[w])
		}
		last[w] = n
	}
}

// TestAuditFileFlushesWithoutClose: a line reaches the file while the log
// stays open (the flush timer), so an agent killed later keeps it.
func TestAuditFileFlushesWithoutClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	a, err := OpenAuditLog(path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	a.log(auditLine(7))
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "task-7 ") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the line was not written within 10 s of being logged (file: %q)", b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
