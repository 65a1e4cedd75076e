// Package testenv gives Berth's tests the real things they run against: one
// private containerd (own root, state and socket under a temporary directory,
// never the system's), a loopback docker-registry with and without htpasswd
// basic auth, private etcd clusters on loopback (Etcd, one per test), and an
// OCI image builder based on busybox-static.
//
// It is test-only: imported by _test.go files and by cmd/berth-testenv, never
// by code that ships in a binary.
//
// Dependencies are found in one of two ways. When the environment variables
// listed in docs/testing.md (BERTHTEST_CONTAINERD_ADDRESS, BERTHTEST_REGISTRY,
// ...) are set, usually by `make test` through cmd/berth-testenv, the running
// instances are shared by every test package. Otherwise the first test that
// asks for a dependency starts a private instance in the test process and
// Main stops it after m.Run. Every package that uses this package must
// therefore have
//
//	func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }
//
// Under CI=true a missing dependency fails the test; elsewhere the test is
// skipped with a message that says how to install it (`make test-deps`).
package testenv
