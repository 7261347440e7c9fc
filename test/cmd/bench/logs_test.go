package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
)

func TestLogText(t *testing.T) {
	t.Parallel()
	for _, n := range []int{1, 2 << 10, 1 << 20} {
		b := logText(n, 7)
		if len(b) != n {
			t.Fatalf("logText(%d): %d bytes", n, len(b))
		}
		if b[n-1] != '\n' {
			t.Errorf("logText(%d) does not end in a newline", n)
		}
		for i, c := range b {
			if c != '\n' && (c < ' ' || c > '~') {
				t.Fatalf("logText(%d)[%d] = %q, not printable", n, i, c)
			}
		}
		if !bytes.Equal(b, logText(n, 7)) {
			t.Errorf("logText(%d) differs between calls with one seed", n)
		}
	}
	b := logText(1<<20, 7)
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	distinct := map[string]bool{}
	for _, l := range lines {
		distinct[l[strings.Index(l, "]")+1:]] = true // without the line number
	}
	if len(lines) < 1000 || len(distinct) < len(lines)*9/10 {
		t.Errorf("logText: %d lines, %d distinct: not varied", len(lines), len(distinct))
	}
	if bytes.Equal(logText(4096, 1), logText(4096, 2)) {
		t.Error("logText gives two seeds the same text")
	}
}

func TestFirstByteAndWhole(t *testing.T) {
	t.Parallel()
	open := func(s string) func(context.Context) (io.ReadCloser, error) {
		return func(context.Context) (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(s)), nil }
	}
	d, body, err := firstByte(context.Background(), open("hello\nworld\n"))
	if err != nil || string(body) != "hello\nworld\n" || d <= 0 {
		t.Errorf("firstByte = %v, %q, %v", d, body, err)
	}
	if _, _, err := firstByte(context.Background(), open("")); err == nil {
		t.Error("firstByte of an empty body did not fail")
	}
	_, n, sum, err := whole(context.Background(), open("abc"))
	// sha256("abc")
	if err != nil || n != 3 || len(sum) != 32 || sum[0] != 0xba || sum[31] != 0xad {
		t.Errorf("whole = %d, %x, %v", n, sum, err)
	}
}
