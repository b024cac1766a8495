package electric

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/tidings/tidings/txlog"
)

// offsetKind says where a shape request starts.
type offsetKind uint8

// The kinds of offset. The zero kind is no offset: parseOffset never
// returns it, so that a forgotten offset cannot pass for -1.
const (
	offsetInitial offsetKind = iota + 1 // -1: the snapshot, then the changes after it
	offsetNow                           // now: no snapshot, the changes after the head
	offsetAt                            // <T>_0: the changes after txn T
)

// offset is a parsed offset parameter. Every offset this server sends is
// <T>_0, meaning that every transaction up to T has been delivered: the
// client builds T_0 itself from global_last_seen_lsn after an SSE stream,
// so the op part is always 0 and T alone says where to resume
// (txlog.AfterTxn(T)).
type offset struct {
	kind offsetKind
	txn  txlog.Txn // offsetAt
}

// maxOffsetLen bounds the offset and handle parameters, which are outside
// input: the longest this server sends is a 20-digit txn with a suffix.
const maxOffsetLen = 64

// errForeignOffset is an offset in Electric's form that this server never
// sends (<a>_<b> with b ≠ 0, such as Electric's 0_inf): one of another
// server, so the handler answers 409 and the client re-syncs.
var errForeignOffset = errors.New("electric: offset of another server")

// parseOffset reads the offset parameter: -1, now or <T>_0. "<a>_<b>"
// with b != 0 (e.g. Electric's 0_inf) is errForeignOffset (the handler
// answers 409); anything malformed is *paramError{"offset", why}. Numbers
// are strict decimals, so each offset has one spelling.
func parseOffset(s string) (offset, error) {
	switch s {
	case "-1":
		return offset{kind: offsetInitial}, nil
	case "now":
		return offset{kind: offsetNow}, nil
	case "":
		return offset{}, &paramError{"offset", "missing: -1 for a snapshot, now, or the last electric-offset"}
	}
	// The message is made only for a malformed offset: this runs on
	// every request.
	malformed := func() error {
		return &paramError{"offset", fmt.Sprintf("%q is not an offset: -1, now or <txn>_0", clipText(s))}
	}
	if len(s) > maxOffsetLen {
		return offset{}, malformed()
	}
	a, b, ok := strings.Cut(s, "_")
	if !ok {
		return offset{}, malformed()
	}
	t, ok := parseDecimalTxn(a)
	if !ok {
		return offset{}, malformed()
	}
	if b == "0" {
		return offset{kind: offsetAt, txn: t}, nil
	}
	if _, ok := parseDecimalTxn(b); ok || b == "inf" {
		return offset{}, errForeignOffset
	}
	return offset{}, malformed()
}

// String writes the offset as parseOffset reads it: "-1", "now", "<T>_0".
func (o offset) String() string {
	switch o.kind {
	case offsetInitial:
		return "-1"
	case offsetNow:
		return "now"
	case offsetAt:
		return strconv.FormatUint(uint64(o.txn), 10) + "_0"
	}
	return "offset(invalid)"
}

// parseDecimalTxn reads a txn in its one spelling: decimal digits without
// sign, space or leading zero (but "0"), that fit in 64 bits.
func parseDecimalTxn(s string) (txlog.Txn, bool) {
	if s == "" || len(s) > 1 && s[0] == '0' {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return txlog.Txn(n), err == nil
}

// mappingVersion is part of every shape hash: a change to how documents
// become rows (or to the canonical shape definition) changes it, so that
// clients holding handles of the old mapping re-sync.
const mappingVersion = "1"

// shapeHash is 16 hex digits of sha256 over the log's ID, the shape's
// canonical definition and mappingVersion: a handle names a shape of one
// log, so another log (a restarted in-memory broker) or another definition
// has another hash. The definition is length-prefixed so that no
// (definition, version) pair reads as another.
func shapeHash(log txlog.ID, def string) string {
	h := sha256.New()
	h.Write(log[:])
	h.Write(binary.AppendUvarint(nil, uint64(len(def))))
	h.Write([]byte(def))
	h.Write([]byte(mappingVersion))
	sum := h.Sum(nil)
	return hex.EncodeToString(sum[:8])
}

// makeHandle is the handle of a shape started by a snapshot at txn s:
// shapeHash + "-" + decimal s. The txn makes handles of one shape differ
// across re-syncs, which the client needs: it takes a 409 that names a
// handle it has seen invalidated for a stale cached copy.
func makeHandle(log txlog.ID, def string, s txlog.Txn) string {
	return shapeHash(log, def) + "-" + strconv.FormatUint(uint64(s), 10)
}

// errMalformedHandle is a handle parameter this server cannot have sent.
// It is no 400: like a handle of another log, it names no shape here, and
// the handler answers 409 with a new handle so that the client re-syncs.
var errMalformedHandle = errors.New("electric: malformed handle")

// parseHandle splits a handle into its hash (16 lowercase hex digits) and
// its snapshot txn; it does not check the hash (the handler compares it
// with shapeHash of the request). Errors wrap errMalformedHandle.
func parseHandle(h string) (hash string, s txlog.Txn, err error) {
	if len(h) > maxOffsetLen {
		return "", 0, fmt.Errorf("%w: longer than %d bytes", errMalformedHandle, maxOffsetLen)
	}
	hash, txn, ok := strings.Cut(h, "-")
	if !ok || len(hash) != 16 || strings.Trim(hash, "0123456789abcdef") != "" {
		return "", 0, fmt.Errorf("%w: %q is not <16 hex digits>-<txn>", errMalformedHandle, h)
	}
	s, ok = parseDecimalTxn(txn)
	if !ok {
		return "", 0, fmt.Errorf("%w: %q is not <16 hex digits>-<txn>", errMalformedHandle, h)
	}
	return hash, s, nil
}
