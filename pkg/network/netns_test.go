package network

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCreateRemoveNetns(t *testing.T) {
	requireHost(t)
	dir := t.TempDir()
	path, err := CreateNetns(dir, "bt-netns-test")
	if err != nil {
		t.Fatal(err)
	}
	if !isNetns(path) {
		t.Fatalf("%s is not a mounted network namespace", path)
	}
	if _, err := CreateNetns(dir, "bt-netns-test"); err == nil {
		t.Fatal("creating the same name twice: want an error")
	}
	if !isNetns(path) {
		t.Fatal("a failed second create removed the first namespace")
	}
	if err := RemoveNetns(path); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("%s still there after RemoveNetns: %v", path, err)
	}
	if err := RemoveNetns(path); err != nil {
		t.Fatalf("second RemoveNetns: %v", err)
	}
	// A plain file (a crash between creating the file and mounting it) is
	// not a namespace, and RemoveNetns deletes it.
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	if isNetns(plain) {
		t.Fatal("a plain file counted as a namespace")
	}
	if err := RemoveNetns(plain); err != nil {
		t.Fatal(err)
	}
}
