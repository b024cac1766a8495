package fauna

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

// errBadToken is the refusal of a token this Handler did not mint.
var errBadToken = errors.New("the event source token is invalid")

// tokenPayload is what a token carries: the target and the log position
// at minting. Short keys keep tokens short.
type tokenPayload struct {
	Kind       string        `json:"k"`
	Collection string        `json:"c,omitempty"`
	ID         string        `json:"id,omitempty"`
	Index      string        `json:"i,omitempty"`
	Terms      []index.Value `json:"t,omitempty"`
	Cursor     string        `json:"p"`
}

func (h *Handler) key() []byte {
	h.keyOnce.Do(func() {
		if len(h.TokenKey) > 0 {
			h.signKey = h.TokenKey
			return
		}
		h.signKey = make([]byte, 32)
		rand.Read(h.signKey)
	})
	return h.signKey
}

// Token mints a v10 event source token for target: opaque to clients,
// signed with HMAC-SHA256 under TokenKey (a random key per Handler when
// TokenKey is empty, so that tokens then die with the process, as do the
// cursors of an in-memory log). It holds the target and the broker's head
// at minting, so that a stream or feed from the token starts there. An
// unknown collection or index is an error.
func (h *Handler) Token(target subscription.Target) (string, error) {
	// A page after the head reads nothing and returns the head's cursor,
	// checking the target on the way.
	page, err := h.Server.Broker.ReadPage(context.Background(), target, subscription.Options{}, 1, false)
	if err != nil {
		return "", err
	}
	p := tokenPayload{Cursor: page.Cursor.String()}
	switch target.Kind {
	case subscription.KindDocument:
		p.Kind, p.Collection, p.ID = "d", target.Ref.Collection, target.Ref.ID
	case subscription.KindCollection:
		p.Kind, p.Collection = "c", target.Collection
	case subscription.KindIndex:
		p.Kind, p.Index, p.Terms = "i", target.Index, target.Terms
	default:
		return "", fmt.Errorf("%w: %v", subscription.ErrInvalidTarget, target)
	}
	b, err := json.Marshal(p)
	if err != nil {
		return "", err
	}
	mac := hmac.New(sha256.New, h.key())
	mac.Write(b)
	enc := base64.RawURLEncoding
	return enc.EncodeToString(b) + "." + enc.EncodeToString(mac.Sum(nil)), nil
}

// parseToken checks a token's signature and returns its target and the
// cursor of its minting.
func (h *Handler) parseToken(tok string) (subscription.Target, string, error) {
	// Strict: one spelling per token (the unused bits of a last
	// character must be zero).
	enc := base64.RawURLEncoding.Strict()
	body, sig, ok := strings.Cut(tok, ".")
	if !ok {
		return subscription.Target{}, "", errBadToken
	}
	b, err1 := enc.DecodeString(body)
	s, err2 := enc.DecodeString(sig)
	if err1 != nil || err2 != nil {
		return subscription.Target{}, "", errBadToken
	}
	mac := hmac.New(sha256.New, h.key())
	mac.Write(b)
	if !hmac.Equal(s, mac.Sum(nil)) {
		return subscription.Target{}, "", errBadToken
	}
	var p tokenPayload
	if err := json.Unmarshal(b, &p); err != nil {
		return subscription.Target{}, "", errBadToken
	}
	switch p.Kind {
	case "d":
		return subscription.Document(txlog.Ref{Collection: p.Collection, ID: p.ID}), p.Cursor, nil
	case "c":
		return subscription.Collection(p.Collection), p.Cursor, nil
	case "i":
		return subscription.Target{Kind: subscription.KindIndex, Index: p.Index, Terms: p.Terms}, p.Cursor, nil
	}
	return subscription.Target{}, "", errBadToken
}

// v10Stats is the stats object of every v10 answer: tidings meters nothing.
const v10Stats = `{"read_ops":0,"storage_bytes_read":0,"compute_ops":0,"processing_time_ms":0,"rate_limits_hit":[]}`

type nativeV10 struct {
	Type   string          `json:"type"`
	Txn    txlog.Txn       `json:"txn"`
	Cursor string          `json:"cursor"`
	Event  json.RawMessage `json:"event"` // a number in start events
}

type nativeV10Body struct {
	Action   string `json:"action"`
	Document *struct {
		Ref  txlog.Ref       `json:"ref"`
		TS   txlog.Txn       `json:"ts"`
		Data json.RawMessage `json:"data"`
	} `json:"document"`
	Code        string `json:"code"`
	Description string `json:"description"`
}

// v10Actions maps the broker's actions to v10's event types: a document
// event source's create, update and delete become add, update and remove.
var v10Actions = map[string]string{
	"create": "add", "update": "update", "delete": "remove",
	"add": "add", "remove": "remove",
}

// appendV10 appends the v10 line of a native event (without \r\n), or
// reports ok false for an event with no v10 form. Status events carry
// lastCursor, since v10 gives every status one.
func appendV10(dst, native []byte, lastCursor string) (out []byte, ok bool, err error) {
	var n nativeV10
	if err := json.Unmarshal(native, &n); err != nil {
		return dst, false, err
	}
	var ev nativeV10Body
	if n.Type != "start" && n.Type != "status" {
		if err := json.Unmarshal(n.Event, &ev); err != nil {
			return dst, false, err
		}
	}
	switch n.Type {
	case "start", "status":
		c := n.Cursor
		if c == "" {
			c = lastCursor
		}
		dst = fmt.Appendf(dst, `{"type":"status","txn_ts":%d,"cursor":%q,"stats":%s}`, n.Txn, c, v10Stats)
		return dst, true, nil
	case "error":
		return appendV10Error(dst, ev.Code, ev.Description), true, nil
	case "history_rewrite":
		// v10 has no such event; ending the stream says that history
		// changed, where leaving it out would be a silent gap.
		return appendV10Error(dst, "history_rewrite", "The history of this event source was rewritten; mint a new token."), true, nil
	case "version", "set":
	default:
		return dst, false, nil
	}
	typ := v10Actions[ev.Action]
	if typ == "" || ev.Document == nil {
		return dst, false, nil
	}
	d := ev.Document
	dst = fmt.Appendf(dst, `{"type":%q,"data":`, typ)
	dst, err = appendV10Doc(dst, d.Ref, d.TS, d.Data)
	if err != nil {
		return dst, false, err
	}
	dst = fmt.Appendf(dst, `,"txn_ts":%d,"cursor":%q,"stats":%s}`, n.Txn, n.Cursor, v10Stats)
	return dst, true, nil
}

func appendV10Error(dst []byte, code, message string) []byte {
	b, _ := json.Marshal(map[string]any{"type": "error", "error": map[string]string{"code": code, "message": message}})
	return append(dst, b...)
}

// appendV10Doc appends a document in v10's tagged form: id, coll and ts
// beside the user fields, which go under "data" where their names clash.
func appendV10Doc(dst []byte, ref txlog.Ref, ts txlog.Txn, data []byte) ([]byte, error) {
	doc := map[string]any{
		"id":   ref.ID,
		"coll": map[string]string{"@mod": ref.Collection},
		"ts":   map[string]string{"@time": time.UnixMicro(int64(ts)).UTC().Format("2006-01-02T15:04:05.000000Z")},
	}
	if len(data) > 0 && !bytes.Equal(data, []byte("null")) {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var user map[string]any
		if err := dec.Decode(&user); err != nil {
			return dst, err
		}
		clash := map[string]any{}
		for k, v := range user {
			switch k {
			case "id", "coll", "ts", "ttl", "data":
				clash[k] = escapeV10(v)
			default:
				doc[k] = escapeV10(v)
			}
		}
		if len(clash) > 0 {
			doc["data"] = clash
		}
	}
	b, err := json.Marshal(map[string]any{"@doc": doc})
	return append(dst, b...), err
}

// escapeV10 wraps user objects with a key that starts with "@" in
// {"@object":…}, so that the driver does not read them as tags.
func escapeV10(v any) any {
	switch v := v.(type) {
	case map[string]any:
		tagged := false
		for k, e := range v {
			v[k] = escapeV10(e)
			tagged = tagged || strings.HasPrefix(k, "@")
		}
		if tagged {
			return map[string]any{"@object": v}
		}
		return v
	case []any:
		for i, e := range v {
			v[i] = escapeV10(e)
		}
	}
	return v
}
