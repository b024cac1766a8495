package transport

import (
	"bytes"
	"net/http"
	"time"
)

// Detached streams: with Server.Detach, a stream of one subscription over
// HTTP/1.1 takes its connection over from net/http (http.Hijacker), and
// its handler returns. Nothing waits for it: the broker's delivery
// workers write its events (broker.Subscription.Deliver) straight to the
// connection, chunked as net/http would, and the end of the stream
// (Deliver's last call) writes the last chunk, closes the connection and
// releases the stream. An idle stream then holds no goroutine and none of
// net/http's per-connection buffers (4 KiB to read, 4 KiB and 2 KiB to
// write), which are most of what a stream costs otherwise.
//
// What it gives up: a client that goes away is noticed at the next write
// (a heartbeat at the latest) rather than at once, since no one reads the
// connection; net/http no longer knows the connection (its Shutdown and
// ConnState do not see it; Server.Shutdown does); and middleware that
// looks at the response after the handler returns sees a handler that
// returned at once.

// chunkRoom is the room for a chunk's size in front of a detached
// stream's write: eight hex digits, zero-padded (chunk-size is 1*HEXDIG,
// RFC 9112 §7.1), and CRLF, so that the size goes in place whatever it
// is, and the head, size, data and CRLF go out in one write.
var chunkRoom [10]byte

// lastChunk ends a chunked body.
const lastChunk = "0\r\n\r\n"

// detach takes the connection of p's stream over, when Detach asks for it
// and the stream can be detached: HTTP/1.1, one subscription, a
// ResponseWriter that can be hijacked. It reports whether it did; if not,
// nothing was written and the stream is served as usual.
func (s *Server) detach(w http.ResponseWriter, r *http.Request, f framer, p *pump) bool {
	if !s.Detach || r.ProtoMajor != 1 || r.ProtoMinor < 1 || p.ps.multi() {
		return false
	}
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return false
	}
	// Whatever the client sent after its request (net/http's buffered
	// reader, dropped here) is never read: the connection ends with the
	// stream. The header map is still the handler's to read.
	h := w.Header()
	f.header(h)
	h.Del("Content-Length")
	h.Set("Transfer-Encoding", "chunked")
	h.Set("Connection", "close")
	head := bytes.NewBuffer(make([]byte, 0, 256))
	head.WriteString("HTTP/1.1 200 OK\r\n")
	h.Write(head) // in wire form, sorted
	head.WriteString("\r\n")
	p.sw = streamWriter{conn: conn, head: head.Bytes(), timeout: orDefault(s.WriteTimeout, DefaultWriteTimeout)}
	return true
}

// writeChunk writes buf[start:] as one chunk, after what begin put before
// it (the head, the first time): the chunk's size goes in the room begin
// left.
func (sw *streamWriter) writeChunk(buf []byte, start int) bool {
	n := len(buf) - start
	room := buf[start-len(chunkRoom) : start]
	const hex = "0123456789abcdef"
	for i := 7; i >= 0; i-- {
		room[i] = hex[n&0xf]
		n >>= 4
	}
	room[8], room[9] = '\r', '\n'
	buf = append(buf, '\r', '\n')
	sw.conn.SetWriteDeadline(time.Now().Add(sw.timeout))
	_, err := sw.conn.Write(buf)
	sw.counters.wrote(len(buf)-start-2, err)
	return err == nil
}

// detachedEnd ends a detached stream: its ending (when the server ended
// it), the last chunk, and the connection's close; then it releases the
// stream as a handler's return would.
func (p *pump) detachedEnd() {
	p.end()
	sw := &p.sw
	sw.conn.SetWriteDeadline(time.Now().Add(sw.timeout))
	sw.conn.Write(append(sw.head, lastChunk...)) // the head too, if nothing went out
	sw.conn.Close()
	p.close()
}
