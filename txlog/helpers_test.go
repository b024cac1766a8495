package txlog

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// Helpers that the tests of several files use: records to append, logs to
// open, and reading them back. A helper that one file's tests use stays in
// that file.

// testWrites returns a record of n writes whose ids carry tag, so that a
// test can tell records apart by content.
func testWrites(tag string, n int) []Write {
	ws := make([]Write, n)
	for i := range ws {
		ws[i] = Write{
			Ref:    Ref{Collection: "spells", ID: fmt.Sprintf("%s-%d", tag, i)},
			Action: ActionCreate,
			After:  []byte(fmt.Sprintf(`{"tag":%q,"op":%d}`, tag, i)),
		}
	}
	return ws
}

// openFile opens a file log, failing the test on an error.
func openFile(t *testing.T, dir string, opt FileOptions) *FileLog {
	t.Helper()
	l, err := OpenFile(dir, opt)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// readAll reads everything after c, failing the test on error.
func readAll(t *testing.T, l Log, c Cursor) []Record {
	t.Helper()
	recs, err := collect(l, c)
	if err != nil {
		t.Fatalf("read after %+v: %v", c.Pos, err)
	}
	return recs
}

// collect reads everything after c, stopping at the first error.
func collect(l Log, c Cursor) ([]Record, error) {
	var recs []Record
	for r, err := range l.Read(c) {
		if err != nil {
			return recs, err
		}
		recs = append(recs, r)
	}
	return recs, nil
}

// tornBytesPattern finds recovery's warning about a torn record, and how
// many bytes it truncated.
var tornBytesPattern = regexp.MustCompile(`truncating a record torn by a crash\b.*? bytes=(\d+)`)

// tornWarnings counts recovery's warnings about torn records and the bytes
// it truncated.
func tornWarnings(log string) (n, bytes int) {
	for _, m := range tornBytesPattern.FindAllStringSubmatch(log, -1) {
		b, _ := strconv.Atoi(m[1])
		n, bytes = n+1, bytes+b
	}
	if w := strings.Count(log, "truncating a record torn by a crash"); w != n {
		return w, -1 // a warning without its bytes: the log format changed
	}
	return n, bytes
}
