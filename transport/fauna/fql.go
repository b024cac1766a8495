package fauna

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/internal/jsondoc"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

// The FQL that POST /query/1 answers is the few queries that make an event
// source. They are read token by token over the driver's fragments, the
// query's source text and its interpolated values, rather than matched as
// text, so that an interpolated id or term is always a value: quotes or
// backslashes in it cannot make it FQL.

// errQuery is a query outside the forms served (invalid_query).
var errQuery = errors.New("query")

// tokenKind is the kind of an FQL token.
type tokenKind uint8

const (
	tokIdent tokenKind = iota // a name
	tokPunct                  // . ( ) , !
	tokValue                  // a literal, or a value interpolated or passed as an argument
)

type fqlToken struct {
	kind tokenKind
	text string // the name, or the punctuation
	val  fqlValue
}

// fqlValue is a value of the query: JSON for a scalar (what an index term
// and an id are made of), a collection given as a module, or a document
// given as a ref.
type fqlValue struct {
	json []byte
	mod  string
	ref  *txlog.Ref
}

// queryRequest is the body of POST /query/1.
type queryRequest struct {
	Query     json.RawMessage            `json:"query"`
	Arguments map[string]json.RawMessage `json:"arguments"`
}

// parseEventSource reads a /query/1 body into the target of its event
// source, checked against the schema: coll.all(), coll.byId(id), or
// Set.single(coll.byId(id)), or coll.index(terms…), followed by
// .eventSource(). The query is the driver's {"fql":[…]} (source text,
// {"value":…} and nested {"fql":[…]} fragments) or one string; names not
// otherwise known are looked up in "arguments". An error wrapping
// errQuery is a query outside these forms; others are the broker's.
func parseEventSource(body []byte, schema index.Schema) (subscription.Target, error) {
	var req queryRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return subscription.Target{}, fmt.Errorf(`%w: the body must be {"query":…}: %v`, errQuery, err)
	}
	if len(req.Query) == 0 {
		return subscription.Target{}, fmt.Errorf(`%w: the body must be {"query":…}`, errQuery)
	}
	p := fqlParser{args: req.Arguments, schema: schema}
	if err := p.fragment(req.Query, 0); err != nil {
		return subscription.Target{}, err
	}
	return p.source()
}

type fqlParser struct {
	toks   []fqlToken
	at     int
	args   map[string]json.RawMessage
	schema index.Schema
}

// maxNesting bounds nested {"fql":[…]} fragments.
const maxNesting = 8

// fragment appends the tokens of a query: a string of source, or
// {"fql":[…]} whose parts are source strings, {"value":…} and nested
// queries.
func (p *fqlParser) fragment(raw json.RawMessage, depth int) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '"' {
		var src string
		if err := json.Unmarshal(raw, &src); err != nil {
			return fmt.Errorf("%w: %v", errQuery, err)
		}
		return p.lex(src)
	}
	var q struct {
		FQL []json.RawMessage `json:"fql"`
	}
	if err := json.Unmarshal(raw, &q); err != nil || q.FQL == nil {
		return fmt.Errorf(`%w: a query is {"fql":[…]} or a string, got %s`, errQuery, compact(raw))
	}
	if depth >= maxNesting {
		return fmt.Errorf("%w: queries nested more than %d deep", errQuery, maxNesting)
	}
	for _, part := range q.FQL {
		part = bytes.TrimSpace(part)
		switch {
		case len(part) > 0 && part[0] == '"':
			if err := p.fragment(part, depth); err != nil {
				return err
			}
		case len(part) > 0 && part[0] == '{':
			var m map[string]json.RawMessage
			if err := json.Unmarshal(part, &m); err != nil {
				return fmt.Errorf("%w: %v", errQuery, err)
			}
			if v, ok := m["value"]; ok && len(m) == 1 {
				val, err := taggedValue(v)
				if err != nil {
					return err
				}
				p.toks = append(p.toks, fqlToken{kind: tokValue, val: val})
				continue
			}
			if err := p.fragment(part, depth+1); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%w: a part of a query is a string, {\"value\":…} or {\"fql\":[…]}, got %s", errQuery, compact(part))
		}
	}
	return nil
}

// lex appends the tokens of FQL source text.
func (p *fqlParser) lex(src string) error {
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '.' || c == '(' || c == ')' || c == ',' || c == '!':
			p.toks = append(p.toks, fqlToken{kind: tokPunct, text: src[i : i+1]})
			i++
		case c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z':
			j := i + 1
			for j < len(src) && (src[j] == '_' || 'a' <= src[j] && src[j] <= 'z' || 'A' <= src[j] && src[j] <= 'Z' || '0' <= src[j] && src[j] <= '9') {
				j++
			}
			switch name := src[i:j]; name {
			case "true", "false", "null":
				p.toks = append(p.toks, fqlToken{kind: tokValue, val: fqlValue{json: []byte(name)}})
			default:
				p.toks = append(p.toks, fqlToken{kind: tokIdent, text: name})
			}
			i = j
		case c == '-' || '0' <= c && c <= '9':
			j := i + 1
			for j < len(src) && strings.IndexByte("0123456789.eE+-", src[j]) >= 0 {
				j++
			}
			if !json.Valid([]byte(src[i:j])) {
				return fmt.Errorf("%w: %q is not a number this server reads", errQuery, src[i:j])
			}
			p.toks = append(p.toks, fqlToken{kind: tokValue, val: fqlValue{json: []byte(src[i:j])}})
			i = j
		case c == '"' || c == '\'':
			s, n, err := lexString(src[i:])
			if err != nil {
				return err
			}
			p.toks = append(p.toks, fqlToken{kind: tokValue, val: fqlValue{json: jsondoc.AppendString(nil, s)}})
			i += n
		default:
			r, _ := utf8.DecodeRuneInString(src[i:])
			return fmt.Errorf("%w: unexpected %q", errQuery, r)
		}
	}
	return nil
}

// lexString reads a string literal at the start of src, quoted with " or
// ', with FQL's escapes; it returns the string and the bytes it took. A
// #{…} interpolation in a double-quoted string is refused: it is an
// expression, which this server does not evaluate.
func lexString(src string) (string, int, error) {
	quote := src[0]
	var b strings.Builder
	for i := 1; i < len(src); {
		c := src[i]
		switch {
		case c == quote:
			s := b.String()
			if !utf8.ValidString(s) {
				return "", 0, fmt.Errorf("%w: a string is not valid UTF-8", errQuery)
			}
			return s, i + 1, nil
		case c == '#' && quote == '"' && i+1 < len(src) && src[i+1] == '{':
			return "", 0, fmt.Errorf("%w: string interpolation #{…} is not supported", errQuery)
		case c == '\\':
			if i+1 >= len(src) {
				return "", 0, fmt.Errorf("%w: an unfinished escape", errQuery)
			}
			e := src[i+1]
			i += 2
			switch e {
			case '"', '\'', '\\', '#', '/':
				b.WriteByte(e)
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			case 'b':
				b.WriteByte('\b')
			case 'f':
				b.WriteByte('\f')
			case '0':
				b.WriteByte(0)
			case 'u':
				r, n, err := lexUnicode(src[i:])
				if err != nil {
					return "", 0, err
				}
				b.WriteRune(r)
				i += n
			default:
				return "", 0, fmt.Errorf("%w: unknown escape \\%c", errQuery, e)
			}
		default:
			b.WriteByte(c)
			i++
		}
	}
	return "", 0, fmt.Errorf("%w: an unfinished string", errQuery)
}

// lexUnicode reads the XXXX of \uXXXX, or the {X…} of \u{X…}.
func lexUnicode(src string) (rune, int, error) {
	hex, n := "", 0
	if strings.HasPrefix(src, "{") {
		end := strings.IndexByte(src, '}')
		if end < 2 || end > 7 {
			return 0, 0, fmt.Errorf("%w: a bad \\u{…} escape", errQuery)
		}
		hex, n = src[1:end], end+1
	} else {
		if len(src) < 4 {
			return 0, 0, fmt.Errorf("%w: a bad \\u escape", errQuery)
		}
		hex, n = src[:4], 4
	}
	v, err := strconv.ParseUint(hex, 16, 32)
	if err != nil || v > utf8.MaxRune || 0xD800 <= v && v < 0xE000 {
		return 0, 0, fmt.Errorf("%w: a bad \\u escape %q", errQuery, hex)
	}
	return rune(v), n, nil
}

// taggedValue decodes a value in the v10 tagged format, as the driver
// encodes what it interpolates: strings, numbers (plain, @int, @long,
// @double), booleans and null; a module (@mod) for a collection; a
// document or its ref (@ref, @doc) for a document.
func taggedValue(raw json.RawMessage) (fqlValue, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return fqlValue{}, fmt.Errorf("%w: an empty value", errQuery)
	}
	if raw[0] != '{' {
		if raw[0] == '[' || !json.Valid(raw) {
			return fqlValue{}, fmt.Errorf("%w: only strings, numbers, booleans, null, collections and documents can be interpolated, got %s", errQuery, compact(raw))
		}
		return fqlValue{json: raw}, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || len(m) != 1 {
		return fqlValue{}, fmt.Errorf("%w: only strings, numbers, booleans, null, collections and documents can be interpolated, got %s", errQuery, compact(raw))
	}
	for tag, v := range m {
		var s string
		switch tag {
		case "@int", "@long":
			if json.Unmarshal(v, &s) == nil {
				if _, err := strconv.ParseInt(s, 10, 64); err == nil {
					return fqlValue{json: []byte(s)}, nil
				}
			}
		case "@double":
			if json.Unmarshal(v, &s) == nil {
				if f, err := strconv.ParseFloat(s, 64); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
					return fqlValue{json: strconv.AppendFloat(nil, f, 'g', -1, 64)}, nil
				}
			}
		case "@mod":
			if json.Unmarshal(v, &s) == nil && s != "" {
				return fqlValue{mod: s}, nil
			}
		case "@ref", "@doc":
			var r struct {
				ID   string `json:"id"`
				Coll struct {
					Mod string `json:"@mod"`
				} `json:"coll"`
			}
			if json.Unmarshal(v, &r) == nil && r.ID != "" && r.Coll.Mod != "" {
				return fqlValue{ref: &txlog.Ref{Collection: r.Coll.Mod, ID: r.ID}}, nil
			}
		}
	}
	return fqlValue{}, fmt.Errorf("%w: only strings, numbers, booleans, null, collections and documents can be interpolated, got %s", errQuery, compact(raw))
}

// source reads the whole query: a set, then .eventSource().
func (p *fqlParser) source() (subscription.Target, error) {
	t, err := p.set()
	if err != nil {
		return t, err
	}
	if err := p.expect(".", "eventSource", "(", ")"); err != nil {
		return t, err
	}
	if p.at != len(p.toks) {
		return t, p.unexpected("the end of the query")
	}
	return t, nil
}

// set reads Set.single(doc), coll.all(), coll.byId(id) (a document: a
// shorthand for Set.single of it) or coll.index(terms…).
func (p *fqlParser) set() (subscription.Target, error) {
	if p.peekIdent("Set") {
		p.at++
		if err := p.expect(".", "single", "("); err != nil {
			return subscription.Target{}, err
		}
		ref, err := p.document()
		if err != nil {
			return subscription.Target{}, err
		}
		return subscription.Document(ref), p.expect(")")
	}
	if p.at < len(p.toks) && p.toks[p.at].kind == tokValue && p.toks[p.at].val.ref != nil {
		return subscription.Target{}, fmt.Errorf("%w: a document has no event source; use Set.single(doc).eventSource()", errQuery)
	}
	coll, err := p.collection()
	if err != nil {
		return subscription.Target{}, err
	}
	method, err := p.method()
	if err != nil {
		return subscription.Target{}, err
	}
	args, err := p.arguments()
	if err != nil {
		return subscription.Target{}, err
	}
	switch method {
	case "all":
		if len(args) != 0 {
			return subscription.Target{}, fmt.Errorf("%w: %s.all() takes no argument", errQuery, coll)
		}
		return subscription.Collection(coll), nil
	case "byId":
		id, err := idOf(coll, args)
		if err != nil {
			return subscription.Target{}, err
		}
		p.nonNull()
		return subscription.Document(txlog.Ref{Collection: coll, ID: id}), nil
	}
	return p.match(coll, method, args)
}

// document reads coll.byId(id), with an optional !, or a document value.
func (p *fqlParser) document() (txlog.Ref, error) {
	if p.at < len(p.toks) && p.toks[p.at].kind == tokValue && p.toks[p.at].val.ref != nil {
		p.at++
		return *p.toks[p.at-1].val.ref, nil
	}
	coll, err := p.collection()
	if err != nil {
		return txlog.Ref{}, err
	}
	if err := p.expect(".", "byId"); err != nil {
		return txlog.Ref{}, err
	}
	args, err := p.arguments()
	if err != nil {
		return txlog.Ref{}, err
	}
	id, err := idOf(coll, args)
	if err != nil {
		return txlog.Ref{}, err
	}
	p.nonNull()
	return txlog.Ref{Collection: coll, ID: id}, nil
}

// idOf is the id of coll.byId(args): a string, or an integer.
func idOf(coll string, args []fqlValue) (string, error) {
	if len(args) == 1 && args[0].json != nil {
		var s string
		if json.Unmarshal(args[0].json, &s) == nil && s != "" {
			return s, nil
		}
		if _, err := strconv.ParseUint(string(args[0].json), 10, 64); err == nil {
			return string(args[0].json), nil
		}
	}
	return "", fmt.Errorf("%w: %s.byId takes one id, a string or an integer", errQuery, coll)
}

// match is coll.index(terms…): the schema's index of that name, which must
// be on coll.
func (p *fqlParser) match(coll, name string, args []fqlValue) (subscription.Target, error) {
	i := slices.IndexFunc(p.schema.Indexes, func(d index.Definition) bool { return d.Name == name })
	if i < 0 || p.schema.Indexes[i].Collection != coll {
		return subscription.Target{}, fmt.Errorf("%w: no index %s on %s", errNoIndex, name, coll)
	}
	t := subscription.Target{Kind: subscription.KindIndex, Index: name}
	for _, a := range args {
		if a.json == nil {
			return subscription.Target{}, fmt.Errorf("%w: the terms of %s.%s are strings, numbers, booleans or null", errQuery, coll, name)
		}
		v, err := index.ParseValue(a.json)
		if err != nil {
			return subscription.Target{}, fmt.Errorf("%w: the terms of %s.%s: %v", errQuery, coll, name, err)
		}
		t.Terms = append(t.Terms, v)
	}
	return t, nil
}

// errNoIndex is a method that names no index of its collection
// (not_found).
var errNoIndex = errors.New("not found")

// collection reads a collection: a name, or a module value.
func (p *fqlParser) collection() (string, error) {
	if p.at >= len(p.toks) {
		return "", p.unexpected("a collection")
	}
	t := p.toks[p.at]
	switch {
	case t.kind == tokValue && t.val.mod != "":
		p.at++
		return t.val.mod, nil
	case t.kind == tokIdent:
		p.at++
		if raw, ok := p.args[t.text]; ok {
			v, err := taggedValue(raw)
			if err != nil {
				return "", err
			}
			if v.mod == "" {
				return "", fmt.Errorf("%w: the argument %s is not a collection", errQuery, t.text)
			}
			return v.mod, nil
		}
		return t.text, nil
	}
	return "", p.unexpected("a collection")
}

// method reads .name.
func (p *fqlParser) method() (string, error) {
	if err := p.expect("."); err != nil {
		return "", err
	}
	if p.at >= len(p.toks) || p.toks[p.at].kind != tokIdent {
		return "", p.unexpected("a method")
	}
	p.at++
	return p.toks[p.at-1].text, nil
}

// arguments reads (v, …): values, or names of the request's arguments.
func (p *fqlParser) arguments() ([]fqlValue, error) {
	if err := p.expect("("); err != nil {
		return nil, err
	}
	var vals []fqlValue
	for !p.peekPunct(")") {
		if len(vals) > 0 {
			if err := p.expect(","); err != nil {
				return nil, err
			}
		}
		if p.at >= len(p.toks) {
			return nil, p.unexpected("an argument")
		}
		t := p.toks[p.at]
		switch t.kind {
		case tokValue:
			vals = append(vals, t.val)
		case tokIdent:
			raw, ok := p.args[t.text]
			if !ok {
				return nil, fmt.Errorf("%w: %s is not defined (only literals and the request's arguments are read)", errQuery, t.text)
			}
			v, err := taggedValue(raw)
			if err != nil {
				return nil, err
			}
			vals = append(vals, v)
		default:
			return nil, p.unexpected("an argument")
		}
		p.at++
	}
	p.at++
	return vals, nil
}

// nonNull skips a ! after a document.
func (p *fqlParser) nonNull() {
	if p.peekPunct("!") {
		p.at++
	}
}

// expect reads the tokens given, punctuation or names.
func (p *fqlParser) expect(texts ...string) error {
	for _, want := range texts {
		if p.at >= len(p.toks) || p.toks[p.at].kind == tokValue || p.toks[p.at].text != want {
			return p.unexpected(strconv.Quote(want))
		}
		p.at++
	}
	return nil
}

func (p *fqlParser) peekPunct(s string) bool {
	return p.at < len(p.toks) && p.toks[p.at].kind == tokPunct && p.toks[p.at].text == s
}

func (p *fqlParser) peekIdent(s string) bool {
	return p.at < len(p.toks) && p.toks[p.at].kind == tokIdent && p.toks[p.at].text == s
}

// unexpected describes what was found where want was due.
func (p *fqlParser) unexpected(want string) error {
	got := "the end of the query"
	if p.at < len(p.toks) {
		switch t := p.toks[p.at]; t.kind {
		case tokValue:
			got = "a value"
		default:
			got = strconv.Quote(t.text)
		}
	}
	return fmt.Errorf("%w: %s where %s was due", errQuery, got, want)
}
