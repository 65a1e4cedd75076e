package logship

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// syslogWriteTimeout bounds one write so a stuck receiver cannot hang a
// Ship (and with it a task's stop).
const syslogWriteTimeout = 5 * time.Second

var facilities = map[string]int{
	"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
	"uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11,
	"local0": 16, "local1": 17, "local2": 18, "local3": 19, "local4": 20, "local5": 21, "local6": 22, "local7": 23,
}

func parseFacility(v string) (int, error) {
	if v == "" {
		return facilities["daemon"], nil
	}
	if n, ok := facilities[v]; ok {
		return n, nil
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 && n <= 23 {
		return n, nil
	}
	return 0, errors.New("must be a syslog facility name (daemon, local0, ...) or 0-23")
}

// parseSyslogAddress returns the network and address of syslog-address;
// empty means the local /dev/log socket.
func parseSyslogAddress(v string) (network, addr string, err error) {
	if v == "" {
		return "unixgram", "/dev/log", nil
	}
	u, err := url.Parse(v)
	if err != nil {
		return "", "", fmt.Errorf("bad URL: %v", err)
	}
	switch u.Scheme {
	case "unix", "unixgram":
		if u.Path == "" {
			return "", "", errors.New("needs a socket path, e.g. unix:///dev/log")
		}
		return u.Scheme, u.Path, nil
	case "udp", "tcp", "tcp+tls":
		host := u.Host
		if host == "" {
			return "", "", errors.New("needs a host")
		}
		if _, _, err := net.SplitHostPort(host); err != nil {
			host = net.JoinHostPort(host, "514")
		}
		return u.Scheme, host, nil
	}
	return "", "", errors.New("scheme must be udp, tcp, tcp+tls, unix or unixgram")
}

type syslogDriver struct {
	network, addr string
	tlsConf       *tls.Config
	facility      int
	format        string
	tag           string
	hostname      string
	conn          net.Conn
}

var _ Driver = (*syslogDriver)(nil)

func newSyslog(opts map[string]string, info ContainerInfo) (Driver, error) {
	network, addr, err := parseSyslogAddress(opts["syslog-address"])
	if err != nil {
		return nil, fmt.Errorf("log opt \"syslog-address\": %v: %w", err, ErrInvalidOption)
	}
	fac, err := parseFacility(opts["syslog-facility"])
	if err != nil {
		return nil, fmt.Errorf("log opt \"syslog-facility\": %v: %w", err, ErrInvalidOption)
	}
	tag, err := renderTag(opts["tag"], "{{.ID}}", info)
	if err != nil {
		return nil, err
	}
	d := &syslogDriver{network: network, addr: addr, facility: fac, format: opts["syslog-format"], tag: tag}
	if d.format == "" {
		d.format = "rfc3164"
	}
	d.hostname, _ = os.Hostname()
	if network == "tcp+tls" {
		if d.tlsConf, err = syslogTLS(opts); err != nil {
			return nil, err
		}
	}
	return d, nil
}

func syslogTLS(opts map[string]string) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if v := opts["syslog-tls-ca-cert"]; v != "" {
		pem, err := os.ReadFile(v)
		if err != nil {
			return nil, fmt.Errorf("log opt \"syslog-tls-ca-cert\": %v: %w", err, ErrInvalidOption)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("log opt \"syslog-tls-ca-cert\": no certificates in %s: %w", v, ErrInvalidOption)
		}
		c.RootCAs = pool
	}
	if cert, key := opts["syslog-tls-cert"], opts["syslog-tls-key"]; cert != "" || key != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("log opts \"syslog-tls-cert\"/\"syslog-tls-key\": %v: %w", err, ErrInvalidOption)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	c.InsecureSkipVerify, _ = strconv.ParseBool(opts["syslog-tls-skip-verify"])
	return c, nil
}

// format renders one message. Severity is info (6) for stdout and err (3)
// for stderr.
func (d *syslogDriver) render(m Message) []byte {
	sev := 6
	if m.Stream == "stderr" {
		sev = 3
	}
	pri := d.facility*8 + sev
	var s string
	switch d.format {
	case "rfc5424", "rfc5424micro":
		layout := time.RFC3339
		if d.format == "rfc5424micro" {
			layout = "2006-01-02T15:04:05.000000Z07:00"
		}
		s = fmt.Sprintf("<%d>1 %s %s %s - %s - %s", pri, m.Time.Format(layout), nilDash(d.hostname), nilDash(d.tag), nilDash(d.tag), m.Line)
	default:
		s = fmt.Sprintf("<%d>%s %s %s: %s", pri, m.Time.Format(time.Stamp), d.hostname, d.tag, m.Line)
	}
	switch {
	case d.network == "tcp+tls" && strings.HasPrefix(d.format, "rfc5424"):
		// RFC 5425 octet counting: no ambiguity with newlines in messages.
		return []byte(strconv.Itoa(len(s)) + " " + s)
	case d.network == "tcp" || d.network == "tcp+tls" || d.network == "unix":
		return []byte(s + "\n")
	}
	return []byte(s)
}

func nilDash(s string) string {
	if s == "" {
		return "-"
	}
	return strings.ReplaceAll(s, " ", "_")
}

func (d *syslogDriver) connect(ctx context.Context) error {
	if d.conn != nil {
		return nil
	}
	dialer := &net.Dialer{Timeout: syslogWriteTimeout}
	var (
		c   net.Conn
		err error
	)
	switch d.network {
	case "tcp+tls":
		td := &tls.Dialer{NetDialer: dialer, Config: d.tlsConf}
		c, err = td.DialContext(ctx, "tcp", d.addr)
	default:
		c, err = dialer.DialContext(ctx, d.network, d.addr)
	}
	if err != nil {
		return fmt.Errorf("syslog: connect %s://%s: %w", d.network, d.addr, err)
	}
	d.conn = c
	return nil
}

// Ship writes each message; on a failure the connection is dropped and
// redialled on the next call (the Shipper backs off in between).
func (d *syslogDriver) Ship(ctx context.Context, msgs []Message) (int, error) {
	if err := d.connect(ctx); err != nil {
		return 0, err
	}
	c := d.conn
	// Cancelling ctx (a stop past its timeout) ends a blocked write.
	stop := context.AfterFunc(ctx, func() { c.SetWriteDeadline(time.Unix(1, 0)) })
	defer stop()
	for i, m := range msgs {
		if ctx.Err() != nil {
			return i, ctx.Err()
		}
		c.SetWriteDeadline(time.Now().Add(syslogWriteTimeout))
		if _, err := c.Write(d.render(m)); err != nil {
			d.conn.Close()
			d.conn = nil
			return i, fmt.Errorf("syslog: write to %s://%s: %w", d.network, d.addr, err)
		}
	}
	return len(msgs), nil
}

// Close closes the connection.
func (d *syslogDriver) Close() error {
	if d.conn == nil {
		return nil
	}
	err := d.conn.Close()
	d.conn = nil
	return err
}
