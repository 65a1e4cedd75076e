package runtime

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/berth-dev/berth/pkg/container"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// networkFiles are the per-container /etc files bind-mounted over the image's.
type networkFiles struct {
	resolvConf, hosts, hostname string
}

func (f networkFiles) mounts() []specs.Mount {
	var m []specs.Mount
	for _, p := range []struct{ src, dst string }{
		{f.resolvConf, "/etc/resolv.conf"}, {f.hosts, "/etc/hosts"}, {f.hostname, "/etc/hostname"},
	} {
		if p.src != "" {
			m = append(m, specs.Mount{Destination: p.dst, Type: "bind", Source: p.src, Options: []string{"rbind", "rw"}})
		}
	}
	return m
}

func (r *Runtime) containerDir(id string) string { return filepath.Join(r.opts.StateDir, id) }

// writeNetworkFiles writes resolv.conf, hosts and hostname for a container
// under StateDir/<id>.
func (r *Runtime) writeNetworkFiles(spec createSpec) (networkFiles, error) {
	dir := r.containerDir(spec.ID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return networkFiles{}, fmt.Errorf("container state dir: %w", err)
	}
	hostResolv, err := r.hostResolvConf()
	if err != nil {
		return networkFiles{}, err
	}
	resolv, err := resolvConf(hostResolv, spec.Spec, !spec.HostNetwork)
	if err != nil {
		return networkFiles{}, err
	}
	var base []byte
	if spec.HostNetwork {
		// Sharing the host's network means sharing its names too, as Docker does.
		if base, err = os.ReadFile(r.opts.HostHostsFile); err != nil && !os.IsNotExist(err) {
			return networkFiles{}, fmt.Errorf("read host hosts file: %w", err)
		}
	}
	hosts, err := hostsFile(base, spec.Hostname, spec.ExtraHosts)
	if err != nil {
		return networkFiles{}, err
	}
	files := networkFiles{
		resolvConf: filepath.Join(dir, "resolv.conf"),
		hosts:      filepath.Join(dir, "hosts"),
	}
	write := map[string][]byte{files.resolvConf: resolv, files.hosts: hosts}
	if spec.Hostname != "" {
		files.hostname = filepath.Join(dir, "hostname")
		write[files.hostname] = []byte(spec.Hostname + "\n")
	}
	for p, b := range write {
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return networkFiles{}, fmt.Errorf("write %s: %w", p, err)
		}
	}
	return files, nil
}

// hostResolvConf reads the host's resolver configuration, switching to
// systemd-resolved's upstream list when the file only names its stub.
func (r *Runtime) hostResolvConf() ([]byte, error) {
	b, err := os.ReadFile(r.opts.HostResolvConf)
	if err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("read host resolv.conf: %w", err)
	}
	if onlyLoopbackResolvers(b) {
		if alt, err := os.ReadFile(r.opts.SystemdResolvConf); err == nil {
			return alt, nil
		}
	}
	return b, nil
}

func onlyLoopbackResolvers(b []byte) bool {
	servers := 0
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "nameserver" {
			servers++
			if ip := net.ParseIP(f[1]); ip == nil || !ip.IsLoopback() {
				return false
			}
		}
	}
	return servers > 0
}

// defaultResolvers are Docker's fallback when no usable host resolver is
// left for a container in its own network namespace.
var defaultResolvers = []string{"8.8.8.8", "8.8.4.4"}

// resolvConf builds a container's resolv.conf. Explicit DNS settings replace
// the host's (spec's DNS, DNSSearch, DNSOptions). In a private network namespace loopback resolvers (such as the
// systemd-resolved stub 127.0.0.53) cannot be reached, so they are dropped.
func resolvConf(host []byte, dns container.Spec, ownNetNS bool) ([]byte, error) {
	var servers, search, options []string
	sc := bufio.NewScanner(bytes.NewReader(host))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || strings.HasPrefix(f[0], "#") || strings.HasPrefix(f[0], ";") {
			continue
		}
		switch f[0] {
		case "nameserver":
			if ip := net.ParseIP(f[1]); ip != nil && !(ownNetNS && ip.IsLoopback()) {
				servers = append(servers, f[1])
			}
		case "search", "domain":
			search = f[1:]
		case "options":
			options = append(options, f[1:]...)
		}
	}
	if len(dns.DNS) > 0 {
		servers = nil
		for _, s := range dns.DNS {
			if net.ParseIP(s) == nil {
				return nil, fmt.Errorf("dns server %q is not an IP address", s)
			}
			servers = append(servers, s)
		}
	}
	if len(dns.DNSSearch) > 0 {
		search = dns.DNSSearch
	}
	if len(dns.DNSOptions) > 0 {
		options = dns.DNSOptions
	}
	if len(servers) == 0 && ownNetNS {
		servers = defaultResolvers
	}
	var b bytes.Buffer
	for _, s := range servers {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	if len(search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(search, " "))
	}
	if len(options) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(options, " "))
	}
	return b.Bytes(), nil
}

// hostsFile builds /etc/hosts: the host's file (host network) or loopback
// names, the hostname on 127.0.1.1 (the container's own address is not known
// here) and extra hosts.
func hostsFile(base []byte, hostname string, extra []string) ([]byte, error) {
	var b bytes.Buffer
	if len(base) > 0 {
		b.Write(base)
		if base[len(base)-1] != '\n' {
			b.WriteByte('\n')
		}
	} else {
		b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	}
	if hostname != "" && len(base) == 0 {
		fmt.Fprintf(&b, "127.0.1.1\t%s\n", hostname)
	}
	for _, e := range extra {
		name, ip, ok := strings.Cut(e, ":")
		if !ok || name == "" {
			return nil, fmt.Errorf("extra host %q: want name:ip", e)
		}
		// IPv6 addresses contain colons: split at the first one only.
		if net.ParseIP(ip) == nil {
			return nil, fmt.Errorf("extra host %q: %q is not an IP address", e, ip)
		}
		fmt.Fprintf(&b, "%s\t%s\n", ip, name)
	}
	return b.Bytes(), nil
}
