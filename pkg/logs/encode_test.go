package logs

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestJSONStringMatchesEncodingJSONAtEveryOffset puts every byte value that
// needs an escape (and multi-byte runes, valid and not) at every position of
// an eight-byte word, where the word-at-a-time fast path must notice it,
// then compares random byte strings, each against encoding/json (with
// Docker's \u0008 and \u000c, which encoding/json writes as \b and \f since
// Go 1.22).
func TestJSONStringMatchesEncodingJSONAtEveryOffset(t *testing.T) {
	check := func(s []byte) {
		t.Helper()
		want := dockerEscapes(t, s)
		if got := appendJSONString(nil, s); !bytes.Equal(got, want) {
			t.Fatalf("appendJSONString(%q)\n got %s\nwant %s", s, got, want)
		}
	}
	var specials []string
	for b := range 256 {
		if jsonPlain[b] != '1' {
			specials = append(specials, string([]byte{byte(b)}))
		}
	}
	specials = append(specials, "é", "✓", "\u2028", "\u2029", "\xe2\x80", "𝄞")
	for _, sp := range specials {
		for pre := range 17 {
			check([]byte(strings.Repeat("a", pre) + sp + strings.Repeat("b", 17)))
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("abcdefghij \"\\<>&\n\t\x00\x7f\xc3\xa9\xe2\x80\xa8\xff")
	for range 20000 {
		s := make([]byte, rng.IntN(40))
		for i := range s {
			if rng.IntN(4) == 0 {
				s[i] = alphabet[rng.IntN(len(alphabet))]
			} else {
				s[i] = byte('a' + rng.IntN(26))
			}
		}
		check(s)
	}
}

func dockerEscapes(t *testing.T, s []byte) []byte {
	t.Helper()
	j, err := json.Marshal(string(s))
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	for i := 0; i < len(j); i++ {
		if j[i] != '\\' {
			out = append(out, j[i])
			continue
		}
		i++
		switch j[i] {
		case 'b':
			out = append(out, `\u0008`...)
		case 'f':
			out = append(out, `\u000c`...)
		default:
			out = append(out, '\\', j[i])
		}
	}
	return out
}

// TestLineSplitterMatchesBufio feeds lines of lengths around MaxLineSize in
// random chunks and expects the messages a bufio.Reader of MaxLineSize gives
// with ReadSlice (the logger's behaviour before reads were chunked, and
// Docker's): the same pieces however the reads fall.
func TestLineSplitterMatchesBufio(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var in bytes.Buffer
	for range 300 {
		n := []int{0, 1, 70, MaxLineSize - 2, MaxLineSize - 1, MaxLineSize, MaxLineSize + 1, 3*MaxLineSize + 5}[rng.IntN(8)]
		in.WriteString(strings.Repeat("x", n))
		in.WriteByte('\n')
	}
	in.WriteString("unterminated")
	var want []string
	br := bufio.NewReaderSize(bytes.NewReader(in.Bytes()), MaxLineSize)
	for {
		piece, err := br.ReadSlice('\n')
		if len(piece) > 0 {
			want = append(want, string(piece))
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			break
		}
	}
	for round := range 20 {
		var got []string
		var sp lineSplitter
		data := in.Bytes()
		for len(data) > 0 {
			n := min(len(data), 1+rng.IntN(3*MaxLineSize))
			sp.feed(data[:n], func(msg []byte) { got = append(got, string(msg)) })
			data = data[n:]
		}
		if len(sp.pending) > 0 {
			got = append(got, string(sp.pending))
		}
		if len(got) != len(want) {
			t.Fatalf("round %d: %d messages, want %d", round, len(got), len(want))
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("round %d: message %d is %d bytes, want %d", round, i, len(got[i]), len(want[i]))
			}
		}
	}
}
