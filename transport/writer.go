package transport

import (
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/tidings/tidings/txlog"
)

// streamWriter writes a stream's bytes under a write deadline and flushes.
type streamWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	// A detached stream's connection, and its response's head until the
	// first write sends it (see detach.go).
	conn net.Conn
	head []byte
	// counters receive the bytes written, and the write timeouts.
	counters *counters
}

// startResponse writes the response's header and sets sw up.
func (s *Server) startResponse(w http.ResponseWriter, f framer, sw *streamWriter) {
	f.header(w.Header())
	w.WriteHeader(http.StatusOK)
	*sw = streamWriter{w: w, rc: http.NewResponseController(w), timeout: orDefault(s.WriteTimeout, DefaultWriteTimeout)}
}

// writeBuffers are the buffers streams frame their batches in, shared:
// a stream holds one only from the start of a batch to the end of its
// write. A buffer of each stream's own would grow to its largest batch
// and stay that size: with thousands of streams and batches of a hundred
// events, the growing alone (allocating, zeroing, copying) costs a large
// share of the server's time, and the buffers hold memory in proportion
// to the streams. Shared, a few buffers grow once, and a batch still goes
// out in one write (splitting it would cost more syscalls: each write of
// a chunked response costs up to three).
var writeBuffers = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledBuffer: a larger buffer (a long catch-up) is left to the GC
// rather than kept.
const maxPooledBuffer = 1 << 20

func getWriteBuffer() *[]byte { return writeBuffers.Get().(*[]byte) }

// putWriteBuffer returns bp, which buf (grown from it) replaces.
func putWriteBuffer(bp *[]byte, buf []byte) {
	if cap(buf) > maxPooledBuffer {
		return
	}
	*bp = buf[:0]
	writeBuffers.Put(bp)
}

// begin starts a write's buffer: on a detached stream, the response's
// head if it has not gone out yet, and room for the chunk's size. The
// bytes from start on are the write's.
func (sw *streamWriter) begin(buf []byte) (_ []byte, start int) {
	if sw.conn == nil {
		return buf, 0
	}
	buf = append(buf, sw.head...)
	sw.head = nil
	return append(buf, chunkRoom[:]...), len(buf) + len(chunkRoom)
}

// write writes buf[start:] (the bytes before start are begin's) and
// flushes.
func (sw *streamWriter) write(buf []byte, start int) bool {
	if sw.conn != nil {
		return sw.writeChunk(buf, start)
	}
	sw.rc.SetWriteDeadline(time.Now().Add(sw.timeout)) // not every writer has deadlines
	_, err := sw.w.Write(buf[start:])
	if err == nil {
		err = sw.rc.Flush()
	}
	sw.counters.wrote(len(buf)-start, err)
	return err == nil
}

// cursorText is the cursor to resume from, or "" where there is none yet
// (in the middle of a snapshot: start again).
func cursorText(c txlog.Cursor) string {
	if c.Log == (txlog.ID{}) {
		return ""
	}
	return c.String()
}
