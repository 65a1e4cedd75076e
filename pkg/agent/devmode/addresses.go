package devmode

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
)

// AddressesFile is the file under Dir that keeps dev mode's loopback
// addresses across restarts, so that DIR/env, saved AWS profiles and the
// agent's own sessions keep pointing at a live endpoint.
const AddressesFile = "addresses"

// The listeners whose addresses dev mode keeps, by their key in
// AddressesFile.
const (
	addrEndpoint      = "endpoint"
	addrIntrospection = "introspection"
	addrCredentials   = "credentials"
)

// keptAddresses are the addresses in AddressesFile, by key.
type keptAddresses map[string]netip.AddrPort

// keepAddresses returns an address for each of names: the one kept in file
// when it is free, else (none kept) a free loopback port chosen now and
// added to the file. A kept address that something else holds is an error
// naming the address and the file: dev mode does not move silently.
func keepAddresses(file string, names []string) (keptAddresses, error) {
	kept, err := readAddresses(file)
	if err != nil {
		return nil, err
	}
	out := keptAddresses{}
	var chosen []net.Listener // held until every new port is chosen, so none repeats
	defer func() {
		for _, ln := range chosen {
			ln.Close()
		}
	}()
	for _, name := range names {
		if ap, ok := kept[name]; ok {
			ln, err := net.Listen("tcp", ap.String())
			if err != nil {
				return nil, fmt.Errorf("the %s address %s kept in %s is taken (%w); stop what holds it (another berth-agent --dev on this directory?) or delete that line to choose a new port",
					name, ap, file, err)
			}
			ln.Close()
			out[name] = ap
			continue
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("choose a free loopback port for the %s: %w", name, err)
		}
		chosen = append(chosen, ln)
		out[name] = ln.Addr().(*net.TCPAddr).AddrPort()
		kept[name] = out[name]
	}
	if len(chosen) > 0 {
		if err := writeAddresses(file, kept); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// readAddresses parses file ("key=ip:port" lines, # comments); a missing
// file keeps nothing.
func readAddresses(file string) (keptAddresses, error) {
	f, err := os.Open(file)
	if errors.Is(err, os.ErrNotExist) {
		return keptAddresses{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read kept addresses: %w", err)
	}
	defer f.Close()
	kept := keptAddresses{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if !ok || !slices.Contains([]string{addrEndpoint, addrIntrospection, addrCredentials}, key) {
			return nil, fmt.Errorf("%s:%d: %q is not endpoint=, introspection= or credentials=IP:PORT", file, n, line)
		}
		ap, err := netip.ParseAddrPort(value)
		if err != nil || ap.Port() == 0 {
			return nil, fmt.Errorf("%s:%d: %s: %q is not an IP:PORT address with a port", file, n, key, value)
		}
		kept[key] = ap
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read kept addresses: %w", err)
	}
	return kept, nil
}

func writeAddresses(file string, kept keptAddresses) error {
	var b strings.Builder
	b.WriteString("# Addresses of berth-agent --dev on this directory, kept across restarts.\n" +
		"# Delete a line (or the file) to have a free port chosen at the next start.\n")
	for _, key := range []string{addrEndpoint, addrIntrospection, addrCredentials} {
		if ap, ok := kept[key]; ok {
			fmt.Fprintf(&b, "%s=%s\n", key, ap)
		}
	}
	return writeFile(file, b.String())
}
