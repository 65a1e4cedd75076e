package logship

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/berth-dev/berth/pkg/logs"
)

// decodeMsgpack is the test receiver's own msgpack decoder (independent of
// the driver's encoder) for the types the forward protocol uses.
func decodeMsgpack(r *bufio.Reader) (any, error) {
	b, err := r.ReadByte()
	if err != nil {
		return nil, err
	}
	readN := func(n int) ([]byte, error) {
		buf := make([]byte, n)
		_, err := io.ReadFull(r, buf)
		return buf, err
	}
	readLen := func(size int) (int, error) {
		buf, err := readN(size)
		if err != nil {
			return 0, err
		}
		switch size {
		case 1:
			return int(buf[0]), nil
		case 2:
			return int(binary.BigEndian.Uint16(buf)), nil
		}
		return int(binary.BigEndian.Uint32(buf)), nil
	}
	str := func(n int) (any, error) { s, err := readN(n); return string(s), err }
	arr := func(n int) (any, error) {
		out := make([]any, n)
		for i := range out {
			if out[i], err = decodeMsgpack(r); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	mp := func(n int) (any, error) {
		out := map[string]any{}
		for i := 0; i < n; i++ {
			k, err := decodeMsgpack(r)
			if err != nil {
				return nil, err
			}
			if out[k.(string)], err = decodeMsgpack(r); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	switch {
	case b <= 0x7f:
		return uint64(b), nil
	case b&0xf0 == 0x80:
		return mp(int(b & 0x0f))
	case b&0xf0 == 0x90:
		return arr(int(b & 0x0f))
	case b&0xe0 == 0xa0:
		return str(int(b & 0x1f))
	}
	switch b {
	case 0xce:
		v, err := readN(4)
		return uint64(binary.BigEndian.Uint32(v)), err
	case 0xcf:
		v, err := readN(8)
		return binary.BigEndian.Uint64(v), err
	case 0xd9, 0xda, 0xdb:
		n, err := readLen(map[byte]int{0xd9: 1, 0xda: 2, 0xdb: 4}[b])
		if err != nil {
			return nil, err
		}
		return str(n)
	case 0xdc, 0xdd:
		n, err := readLen(map[byte]int{0xdc: 2, 0xdd: 4}[b])
		if err != nil {
			return nil, err
		}
		return arr(n)
	case 0xde, 0xdf:
		n, err := readLen(map[byte]int{0xde: 2, 0xdf: 4}[b])
		if err != nil {
			return nil, err
		}
		return mp(n)
	case 0xd7: // fixext 8: EventTime is type 0
		v, err := readN(9)
		if err != nil || v[0] != 0 {
			return nil, fmt.Errorf("fixext8 type %d: %v", v[0], err)
		}
		return eventTime{binary.BigEndian.Uint32(v[1:5]), binary.BigEndian.Uint32(v[5:9])}, nil
	}
	return nil, fmt.Errorf("unexpected msgpack byte 0x%x", b)
}

type eventTime struct{ sec, nsec uint32 }

// One record encodes to exactly the bytes the forward protocol spec gives.
func TestFluentdForwardEncodingIsByteExact(t *testing.T) {
	d, err := newFluentd(map[string]string{"tag": "t", "fluentd-sub-second-precision": "true"}, ContainerInfo{ID: "c", Name: "n"})
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Unix(1700000000, 123456789)
	got := d.(*fluentdDriver).encodeForward([]Message{{Line: []byte("hi"), Stream: "stdout", Time: ts}}, "")
	var want []byte
	want = append(want, 0x93, 0xa1, 't') // [ "t",
	want = append(want, 0x91, 0x92)      //   [ [
	want = append(want, 0xd7, 0x00)      //       EventTime(
	want = binary.BigEndian.AppendUint32(want, 1700000000)
	want = binary.BigEndian.AppendUint32(want, 123456789) // ),
	want = append(want, 0x84)                             //       {
	want = append(want, 0xac)
	want = append(want, "container_id"...)
	want = append(want, 0xa1, 'c')
	want = append(want, 0xae)
	want = append(want, "container_name"...)
	want = append(want, 0xa2, '/', 'n')
	want = append(want, 0xa6)
	want = append(want, "source"...)
	want = append(want, 0xa6)
	want = append(want, "stdout"...)
	want = append(want, 0xa3)
	want = append(want, "log"...)
	want = append(want, 0xa2, 'h', 'i') // } ] ],
	want = append(want, 0x81, 0xa4)
	want = append(want, "size"...)
	want = append(want, 0x01) // {"size": 1} ]
	if !bytes.Equal(got, want) {
		t.Fatalf("encoding\n got % x\nwant % x", got, want)
	}
}

// A test collector decodes what a shipper sends through the forward
// protocol, acks chunks, and sees every line with its fields.
func TestFluentdShipsToCollector(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type record struct {
		tag string
		t   eventTime
		rec map[string]any
	}
	recs := make(chan record, 10000)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		for {
			v, err := decodeMsgpack(r)
			if err != nil {
				return
			}
			msg := v.([]any)
			for _, e := range msg[1].([]any) {
				entry := e.([]any)
				recs <- record{msg[0].(string), entry[0].(eventTime), entry[1].(map[string]any)}
			}
			if chunk, ok := msg[2].(map[string]any)["chunk"].(string); ok {
				var ack []byte
				ack = append(ack, 0x81, 0xa3, 'a', 'c', 'k')
				ack = append(ack, 0xa0|byte(len(chunk)))
				ack = append(ack, chunk...)
				c.Write(ack)
			}
		}
	}()
	dir := t.TempDir()
	path := filepath.Join(dir, "c.log")
	w := startLog(t, logs.Config{Path: path})
	opts := map[string]string{"fluentd-address": "tcp://" + ln.Addr().String(), "tag": "docker.{{.ID}}",
		"fluentd-sub-second-precision": "true", "fluentd-request-ack": "true", "fluentd-buffer-limit": "100"}
	if err := ValidateOptions(DriverFluentd, opts); err != nil {
		t.Fatal(err)
	}
	d, err := NewDriver(DriverFluentd, opts, ContainerInfo{ID: "0123456789abcdef", Name: "web"}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	s := startShipper(t, dir, path, d, nil)
	w.write(t, 0, 1000)
	w.close()
	drain(t, s)
	for i := 0; i < 1000; i++ {
		r := <-recs
		want := map[string]any{"container_id": "0123456789abcdef", "container_name": "/web", "source": "stdout", "log": fmt.Sprintf("line %07d", i)}
		if r.tag != "docker.0123456789ab" || !reflect.DeepEqual(r.rec, want) || r.t.sec == 0 {
			t.Fatalf("record %d: tag %q time %v %v, want %v", i, r.tag, r.t, r.rec, want)
		}
	}
}

// A collector that accepts but never answers (no ack) does not hold a
// stop past its timeout.
func TestFluentdDeadCollectorDoesNotHangStop(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, never read
		}
	}()
	dir := t.TempDir()
	path := filepath.Join(dir, "c.log")
	w := startLog(t, logs.Config{Path: path})
	d, err := NewDriver(DriverFluentd, map[string]string{"fluentd-address": ln.Addr().String(), "fluentd-request-ack": "true", "fluentd-write-timeout": "1s"}, ContainerInfo{ID: "c"}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	s := startShipper(t, dir, path, d, nil)
	w.write(t, 0, 100)
	w.close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Drain(ctx) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("Drain with a 2 s deadline still blocked after 20 s on a dead collector")
	}
	if st := s.Stats(); st.Shipped != 0 || st.Retries == 0 {
		t.Fatalf("stats %+v: want nothing shipped and failed attempts", st)
	}
}
