package logship

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testenv"
)

func freePort(t *testing.T, network string) int {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startRsyslog runs Debian's rsyslogd in the foreground with a private
// config: loopback UDP and TCP inputs, every message written to a file as
// "<facility> <severity> <app-name> <msg>".
func startRsyslog(t *testing.T) (udpPort, tcpPort int, out string) {
	t.Helper()
	testenv.RequireBinaries(t, "rsyslogd")
	dir := t.TempDir()
	udpPort, tcpPort = freePort(t, "udp"), freePort(t, "tcp")
	out = filepath.Join(dir, "out.log")
	conf := fmt.Sprintf(`global(workDirectory=%q)
module(load="imudp")
module(load="imtcp")
input(type="imudp" address="127.0.0.1" port="%d")
input(type="imtcp" address="127.0.0.1" port="%d")
template(name="berth" type="string" string="%%syslogfacility-text%% %%syslogseverity-text%% %%app-name%% %%msg%%\n")
*.* action(type="omfile" file=%q template="berth")
`, dir, udpPort, tcpPort, out)
	confPath := filepath.Join(dir, "rsyslog.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("rsyslogd", "-n", "-f", confPath, "-i", filepath.Join(dir, "rsyslog.pid"))
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	// Wait until the TCP input listens.
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", tcpPort))
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rsyslogd did not start: %s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return udpPort, tcpPort, out
}

// A real rsyslog on loopback UDP and TCP receives RFC 5424 lines with the
// configured facility, the severity of each stream and the tag.
func TestSyslogToRsyslog(t *testing.T) {
	udpPort, tcpPort, out := startRsyslog(t)
	now := time.Now()
	for _, tc := range []struct{ proto, format string }{
		{"udp", "rfc5424"}, {"tcp", "rfc5424"}, {"tcp", "rfc5424micro"}, {"udp", "rfc3164"},
	} {
		port := udpPort
		if tc.proto == "tcp" {
			port = tcpPort
		}
		opts := map[string]string{"syslog-address": fmt.Sprintf("%s://127.0.0.1:%d", tc.proto, port),
			"syslog-facility": "local3", "syslog-format": tc.format, "tag": "web-{{.Name}}"}
		if err := ValidateOptions(DriverSyslog, opts); err != nil {
			t.Fatal(err)
		}
		d, err := NewDriver(DriverSyslog, opts, ContainerInfo{ID: "0123456789abcdef", Name: "app"}, Deps{})
		if err != nil {
			t.Fatal(err)
		}
		msgs := []Message{
			{Line: []byte("hello over " + tc.proto + " " + tc.format), Stream: "stdout", Time: now},
			{Line: []byte("oops over " + tc.proto + " " + tc.format), Stream: "stderr", Time: now},
		}
		if n, err := d.Ship(context.Background(), msgs); n != 2 || err != nil {
			t.Fatalf("%s: shipped %d: %v", tc.proto, n, err)
		}
		d.Close()
	}
	want := []string{
		"local3 info web-app hello over udp rfc5424",
		"local3 err web-app oops over udp rfc5424",
		"local3 info web-app hello over tcp rfc5424",
		"local3 err web-app oops over tcp rfc5424",
		"local3 info web-app hello over tcp rfc5424micro",
		"local3 err web-app oops over tcp rfc5424micro",
		"local3 info web-app hello over udp rfc3164",
		"local3 err web-app oops over udp rfc3164",
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		b, _ := os.ReadFile(out)
		// RFC 3164's MSG keeps the space after "tag:".
		got := strings.ReplaceAll(string(b), "  ", " ")
		missing := ""
		for _, w := range want {
			if !strings.Contains(got, w) {
				missing = w
				break
			}
		}
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("rsyslog output lacks %q:\n%s", missing, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
