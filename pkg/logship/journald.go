package logship

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultJournalSocket is journald's native protocol socket.
const DefaultJournalSocket = "/run/systemd/journal/socket"

// journald speaks journald's native protocol itself because go-systemd's
// journal package hard-codes the socket path, and tests (and agents in a
// container) need another one.
type journald struct {
	socket string
	// fields are the per-container fields, encoded once.
	fields []byte
	conn   *net.UnixConn
}

var _ Driver = (*journald)(nil)

func newJournald(opts map[string]string, info ContainerInfo, socket string) (Driver, error) {
	if socket == "" {
		socket = DefaultJournalSocket
	}
	tag, err := renderTag(opts["tag"], "{{.ID}}", info)
	if err != nil {
		return nil, err
	}
	short := info.ID
	if len(short) > 12 {
		short = short[:12]
	}
	var f bytes.Buffer
	add := func(k, v string) {
		if v != "" {
			appendJournalField(&f, k, []byte(v))
		}
	}
	add("CONTAINER_ID", short)
	add("CONTAINER_ID_FULL", info.ID)
	add("CONTAINER_NAME", info.Name)
	add("CONTAINER_TAG", tag)
	add("SYSLOG_IDENTIFIER", tag)
	add("IMAGE_NAME", info.ImageName)
	add("ECS_TASK_ARN", info.TaskARN)
	add("ECS_TASK_DEFINITION_FAMILY", info.TaskFamily)
	add("ECS_CLUSTER", info.Cluster)
	for _, kv := range extraAttrs(opts, info) {
		add(journalFieldName(kv[0]), kv[1])
	}
	return &journald{socket: socket, fields: f.Bytes()}, nil
}

// journalFieldName maps a label or env name to a journal field name
// (uppercase letters, digits and underscores, not starting with one), as
// Docker does.
func journalFieldName(k string) string {
	var b strings.Builder
	for _, r := range strings.ToUpper(k) {
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return strings.TrimLeft(b.String(), "_0123456789")
}

// appendJournalField uses the binary form, which allows any value.
func appendJournalField(b *bytes.Buffer, k string, v []byte) {
	b.WriteString(k)
	if bytes.IndexByte(v, '\n') < 0 {
		b.WriteByte('=')
		b.Write(v)
		b.WriteByte('\n')
		return
	}
	b.WriteByte('\n')
	binary.Write(b, binary.LittleEndian, uint64(len(v)))
	b.Write(v)
	b.WriteByte('\n')
}

func (j *journald) Ship(ctx context.Context, msgs []Message) (int, error) {
	if j.conn == nil {
		c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Net: "unixgram"})
		if err != nil {
			return 0, fmt.Errorf("journald: open socket: %w", err)
		}
		j.conn = c
	}
	addr := &net.UnixAddr{Name: j.socket, Net: "unixgram"}
	var b bytes.Buffer
	for i, m := range msgs {
		if ctx.Err() != nil {
			return i, ctx.Err()
		}
		b.Reset()
		appendJournalField(&b, "MESSAGE", m.Line)
		pri := "6"
		if m.Stream == "stderr" {
			pri = "3"
		}
		appendJournalField(&b, "PRIORITY", []byte(pri))
		b.Write(j.fields)
		j.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		_, _, err := j.conn.WriteMsgUnix(b.Bytes(), nil, addr)
		if isMsgTooLarge(err) {
			err = j.sendMemfd(b.Bytes(), addr)
		}
		if err != nil {
			return i, fmt.Errorf("journald: send to %s: %w", j.socket, err)
		}
	}
	return len(msgs), nil
}

func isMsgTooLarge(err error) bool {
	return errors.Is(err, syscall.EMSGSIZE) || errors.Is(err, syscall.ENOBUFS)
}

// sendMemfd passes an entry too large for one datagram as a sealed memfd,
// as the native protocol allows.
func (j *journald) sendMemfd(data []byte, addr *net.UnixAddr) error {
	fd, err := unix.MemfdCreate("journal-entry", unix.MFD_ALLOW_SEALING|unix.MFD_CLOEXEC)
	if err != nil {
		return fmt.Errorf("memfd: %w", err)
	}
	f := os.NewFile(uintptr(fd), "journal-entry")
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("memfd write: %w", err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_WRITE|unix.F_SEAL_SEAL); err != nil {
		return fmt.Errorf("memfd seal: %w", err)
	}
	_, _, err = j.conn.WriteMsgUnix(nil, unix.UnixRights(fd), addr)
	return err
}

func (j *journald) Close() error {
	if j.conn == nil {
		return nil
	}
	err := j.conn.Close()
	j.conn = nil
	return err
}
