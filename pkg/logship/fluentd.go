package logship

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"strconv"
	"time"
)

// fluentdDefaultTimeout bounds connects, writes and ack reads when
// fluentd-write-timeout is not set, so a dead collector never hangs a stop.
const fluentdDefaultTimeout = 5 * time.Second

func parseFluentdAddress(v string) (network, addr string, err error) {
	if v == "" {
		return "tcp", "127.0.0.1:24224", nil
	}
	u, perr := url.Parse(v)
	if perr != nil || u.Scheme == "" {
		// Docker accepts a bare host:port.
		if _, _, err := net.SplitHostPort(v); err == nil {
			return "tcp", v, nil
		}
		return "", "", errors.New("must be tcp://host:port, unix:///path or host:port")
	}
	switch u.Scheme {
	case "tcp":
		host := u.Host
		if _, _, err := net.SplitHostPort(host); err != nil {
			host = net.JoinHostPort(host, "24224")
		}
		return "tcp", host, nil
	case "unix":
		if u.Path == "" {
			return "", "", errors.New("unix:// needs a socket path")
		}
		return "unix", u.Path, nil
	}
	return "", "", errors.New("scheme must be tcp or unix")
}

type fluentdDriver struct {
	network, addr string
	tag           string
	subSecond     bool
	requestAck    bool
	bufferLimit   int
	timeout       time.Duration
	containerID   string
	containerName string
	extra         [][2]string
	conn          net.Conn
}

var (
	_ Driver       = (*fluentdDriver)(nil)
	_ BatchLimiter = (*fluentdDriver)(nil)
)

func newFluentd(opts map[string]string, info ContainerInfo) (Driver, error) {
	network, addr, err := parseFluentdAddress(opts["fluentd-address"])
	if err != nil {
		return nil, fmt.Errorf("log opt \"fluentd-address\": %v: %w", err, ErrInvalidOption)
	}
	tag, err := renderTag(opts["tag"], "{{.ID}}", info)
	if err != nil {
		return nil, err
	}
	d := &fluentdDriver{network: network, addr: addr, tag: tag, timeout: fluentdDefaultTimeout,
		containerID: info.ID, containerName: "/" + info.Name, extra: extraAttrs(opts, info), bufferLimit: defaultBatchMessages}
	d.subSecond, _ = strconv.ParseBool(opts["fluentd-sub-second-precision"])
	d.requestAck, _ = strconv.ParseBool(opts["fluentd-request-ack"])
	if v := opts["fluentd-write-timeout"]; v != "" {
		if t, _ := time.ParseDuration(v); t > 0 {
			d.timeout = t
		}
	}
	if v := opts["fluentd-buffer-limit"]; v != "" {
		d.bufferLimit, _ = strconv.Atoi(v)
	}
	return d, nil
}

// BatchLimits sends at most fluentd-buffer-limit records per forward
// message.
func (d *fluentdDriver) BatchLimits() (int, int, time.Duration) {
	return d.bufferLimit, defaultBatchBytes, 0
}

// encodeForward encodes a Forward-mode message:
// [tag, [[time, record], ...], {"size": n[, "chunk": id]}]. time is an
// integer of seconds, or the EventTime extension (type 0: big-endian uint32
// seconds and nanoseconds) with fluentd-sub-second-precision.
func (d *fluentdDriver) encodeForward(msgs []Message, chunk string) []byte {
	var b []byte
	b = mpArrayHeader(b, 3)
	b = mpString(b, d.tag)
	b = mpArrayHeader(b, len(msgs))
	for _, m := range msgs {
		b = mpArrayHeader(b, 2)
		if d.subSecond {
			b = append(b, 0xd7, 0x00)
			b = binary.BigEndian.AppendUint32(b, uint32(m.Time.Unix()))
			b = binary.BigEndian.AppendUint32(b, uint32(m.Time.Nanosecond()))
		} else {
			b = mpUint(b, uint64(m.Time.Unix()))
		}
		b = mpMapHeader(b, 4+len(d.extra))
		b = mpString(b, "container_id")
		b = mpString(b, d.containerID)
		b = mpString(b, "container_name")
		b = mpString(b, d.containerName)
		b = mpString(b, "source")
		b = mpString(b, m.Stream)
		b = mpString(b, "log")
		b = mpString(b, string(m.Line))
		for _, kv := range d.extra {
			b = mpString(b, kv[0])
			b = mpString(b, kv[1])
		}
	}
	n := 1
	if chunk != "" {
		n = 2
	}
	b = mpMapHeader(b, n)
	b = mpString(b, "size")
	b = mpUint(b, uint64(len(msgs)))
	if chunk != "" {
		b = mpString(b, "chunk")
		b = mpString(b, chunk)
	}
	return b
}

// Ship sends the batch as one forward message; with fluentd-request-ack it
// waits (bounded) for the collector's ack of the chunk.
func (d *fluentdDriver) Ship(ctx context.Context, msgs []Message) (int, error) {
	if d.conn == nil {
		dialer := &net.Dialer{Timeout: d.timeout}
		c, err := dialer.DialContext(ctx, d.network, d.addr)
		if err != nil {
			return 0, fmt.Errorf("fluentd: connect %s: %w", d.addr, err)
		}
		d.conn = c
	}
	c := d.conn
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	chunk := ""
	if d.requestAck {
		var id [16]byte
		rand.Read(id[:])
		chunk = base64.StdEncoding.EncodeToString(id[:])
	}
	c.SetDeadline(time.Now().Add(d.timeout))
	if _, err := c.Write(d.encodeForward(msgs, chunk)); err != nil {
		d.drop()
		return 0, fmt.Errorf("fluentd: write to %s: %w", d.addr, err)
	}
	if chunk != "" {
		if err := readAck(c, chunk); err != nil {
			d.drop()
			return 0, fmt.Errorf("fluentd: ack from %s: %w", d.addr, err)
		}
	}
	return len(msgs), nil
}

// readAck reads the collector's {"ack": chunk} reply.
func readAck(r io.Reader, chunk string) error {
	var hdr [1]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return err
	}
	if hdr[0]&0xf0 != 0x80 || hdr[0]&0x0f != 1 {
		return errors.New("ack is not a one-entry map")
	}
	k, err := mpReadString(r)
	if err != nil {
		return fmt.Errorf("read ack key: %w", err)
	}
	if k != "ack" {
		return fmt.Errorf("ack key is %q, want \"ack\"", k)
	}
	v, err := mpReadString(r)
	if err != nil {
		return err
	}
	if v != chunk {
		return fmt.Errorf("ack for chunk %q, want %q", v, chunk)
	}
	return nil
}

func (d *fluentdDriver) drop() {
	if d.conn != nil {
		d.conn.Close()
		d.conn = nil
	}
}

// Close closes the connection at once.
func (d *fluentdDriver) Close() error {
	d.drop()
	return nil
}

// The msgpack subset the forward protocol needs.

func mpArrayHeader(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, 0x90|byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, 0xdc), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(b, 0xdd), uint32(n))
}

func mpMapHeader(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, 0x80|byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, 0xde), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(b, 0xdf), uint32(n))
}

func mpString(b []byte, s string) []byte {
	n := len(s)
	switch {
	case n < 32:
		b = append(b, 0xa0|byte(n))
	case n <= math.MaxUint8:
		b = append(b, 0xd9, byte(n))
	case n <= math.MaxUint16:
		b = binary.BigEndian.AppendUint16(append(b, 0xda), uint16(n))
	default:
		b = binary.BigEndian.AppendUint32(append(b, 0xdb), uint32(n))
	}
	return append(b, s...)
}

func mpUint(b []byte, v uint64) []byte {
	switch {
	case v < 128:
		return append(b, byte(v))
	case v <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, 0xce), uint32(v))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xcf), v)
}

func mpReadString(r io.Reader) (string, error) {
	var h [1]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return "", err
	}
	var n int
	switch {
	case h[0]&0xe0 == 0xa0:
		n = int(h[0] & 0x1f)
	case h[0] == 0xd9:
		var l [1]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return "", err
		}
		n = int(l[0])
	case h[0] == 0xda:
		var l [2]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return "", err
		}
		n = int(binary.BigEndian.Uint16(l[:]))
	default:
		return "", fmt.Errorf("msgpack type 0x%x is not a string", h[0])
	}
	s := make([]byte, n)
	_, err := io.ReadFull(r, s)
	return string(s), err
}
