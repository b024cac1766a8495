package electric

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

// A shape's where is SQL text written for Postgres. A document broker can
// serve only the wheres that name one of its sets exactly: field = literal
// conditions joined by AND whose fields are the terms of one index, or
// id = '<id>' for one document. The text is read token by token, as
// Postgres would, so that anything Postgres would read otherwise (OR, IN,
// a cast, a comment, a qualified name) is refused with a 400 that says
// what was found, instead of being misread as a condition it is not.

// Bounds on the where, which is outside input: Electric's own wheres are
// short, and the parser recurses once per parenthesis.
const (
	maxWhereLen   = 4096
	maxWhereDepth = 32
	maxWhereParam = 65535 // Postgres numbers its parameters up to 65535
)

// whereServed ends the where errors that refuse a construct, so that the
// 400 says what would be served instead.
const whereServed = "served: field = literal conditions joined by AND " +
	"(literals 'text', numbers, TRUE, FALSE, $n), on the terms of one index, or id = '<id>' alone"

// shapeTarget resolves a shape's table and where (with params[n], 1-based,
// from the query's params[N]) to a broker target, checked against the
// schema: the whole collection for an empty where, one document for
// id = '<id>', or an index matched on its terms. Errors are *paramError
// for the table or the where parameter.
func shapeTarget(table, where string, params map[int]string, schema index.Schema) (subscription.Target, error) {
	if table == "" {
		return subscription.Target{}, &paramError{"table", "missing: name a collection"}
	}
	if !slices.Contains(schema.Collections, table) {
		return subscription.Target{}, &paramError{"table", fmt.Sprintf("unknown collection %q", clipText(table))}
	}
	conds, err := parseWhere(where, params)
	if err != nil {
		return subscription.Target{}, err
	}
	return resolveWhere(table, conds, schema)
}

// whereCond is one field = literal condition of a where.
type whereCond struct {
	path string // the field path, normalized by normPath
	pos  int    // byte offset of the field in the where
	lit  whereLiteral
}

// whereLiteral is the value a condition compares a field with.
type whereLiteral struct {
	val   index.Value // as an index term
	str   string      // the text of a string literal or parameter, for an id
	isStr bool
}

// parseWhere reads a where into its conditions, in the order written; an
// empty (or all white space) where has none.
func parseWhere(where string, params map[int]string) ([]whereCond, error) {
	if len(where) > maxWhereLen {
		return nil, whereError("longer than %d bytes", maxWhereLen)
	}
	if !utf8.ValidString(where) {
		return nil, whereError("not valid UTF-8")
	}
	toks, err := lexWhere(where)
	if err != nil {
		return nil, err
	}
	if len(toks) == 1 { // only the end
		return nil, nil
	}
	p := whereParser{toks: toks, params: params}
	if err := p.conjunction(0); err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != wtEnd {
		return nil, p.unexpected("AND or the end of the where")
	}
	return p.conds, nil
}

// whereError makes the 400 of a where.
func whereError(format string, args ...any) error {
	return &paramError{"where", fmt.Sprintf(format, args...)}
}

// clipText shortens outside text quoted in an error message, so that a
// 400 stays small whatever the request held.
func clipText(s string) string {
	const limit = 64
	if len(s) <= limit {
		return s
	}
	cut := limit
	for cut > limit-utf8.UTFMax && !utf8.RuneStart(s[cut]) { // not inside a rune, if s is UTF-8
		cut--
	}
	return s[:cut] + "…"
}

// normPath is the form in which field paths are compared: a where's field
// and an index's term are the same field when their keys (index.ParsePath)
// are. Both sides go through it, so that they agree however paths come to
// be written.
func normPath(p string) (string, error) {
	keys, err := index.ParsePath(p)
	if err != nil {
		return "", err
	}
	return strings.Join(keys, "."), nil
}

// resolveWhere turns the conditions of a where on table into a target.
func resolveWhere(table string, conds []whereCond, schema index.Schema) (subscription.Target, error) {
	if len(conds) == 0 {
		return subscription.Collection(table), nil
	}
	byPath := make(map[string]whereCond, len(conds))
	for _, c := range conds {
		if prev, ok := byPath[c.path]; ok {
			return subscription.Target{}, whereError("field %s is compared twice (at bytes %d and %d); compare each field once",
				quoteName(clipText(c.path)), prev.pos+1, c.pos+1)
		}
		byPath[c.path] = c
	}
	if c, ok := byPath["id"]; ok && len(conds) == 1 {
		return documentTarget(table, c)
	}
	for _, d := range schema.Indexes {
		if d.Collection == table && sameTerms(d.Terms, byPath) {
			t := subscription.Target{Kind: subscription.KindIndex, Index: d.Name}
			for _, term := range d.Terms {
				p, _ := normPath(term) // sameTerms checked it
				t.Terms = append(t.Terms, byPath[p].lit.val)
			}
			return t, nil
		}
	}
	return subscription.Target{}, noIndexError(table, byPath, schema)
}

// documentTarget is the target of id = '<id>' alone: one document. The id
// is the document's ref id, a string; a number would name no document.
func documentTarget(table string, c whereCond) (subscription.Target, error) {
	if !c.lit.isStr {
		return subscription.Target{}, whereError("id at byte %d is compared with %s: a document id is text, write id = '<id>' or id = $n",
			c.pos+1, clipText(c.lit.val.String()))
	}
	if c.lit.str == "" {
		return subscription.Target{}, whereError("id at byte %d is compared with an empty id", c.pos+1)
	}
	return subscription.Document(txlog.Ref{Collection: table, ID: c.lit.str}), nil
}

// sameTerms reports whether an index's terms are exactly the where's
// fields, as a set. An index with a term that is not a valid path matches
// nothing (the broker refuses such a schema anyway).
func sameTerms(terms []string, byPath map[string]whereCond) bool {
	if len(terms) == 0 {
		return false // a term-less index is not named by a where; an empty where is the collection
	}
	seen := make(map[string]bool, len(terms))
	for _, term := range terms {
		p, err := normPath(term)
		if err != nil {
			return false
		}
		if _, ok := byPath[p]; !ok {
			return false
		}
		seen[p] = true
	}
	return len(seen) == len(byPath)
}

// noIndexError is the 400 of a where whose fields are no index's terms: it
// lists the table's indexes, so that the author sees which field sets are
// served.
func noIndexError(table string, byPath map[string]whereCond, schema index.Schema) error {
	fields := make([]string, 0, len(byPath))
	for p := range byPath {
		fields = append(fields, quoteName(clipText(p)))
	}
	slices.Sort(fields)
	if most := 8; len(fields) > most { // the 400 stays small
		fields = append(fields[:most], fmt.Sprintf("… (%d fields)", len(byPath)))
	}
	var idx []string
	for _, d := range schema.Indexes {
		if d.Collection == table && len(d.Terms) > 0 {
			idx = append(idx, fmt.Sprintf("%s (%s)", d.Name, strings.Join(d.Terms, ", ")))
		}
	}
	have := "it has no index with terms"
	if len(idx) > 0 {
		have = "its indexes: " + strings.Join(idx, "; ")
	}
	return whereError("no index of %q has exactly the terms %s; %s; or write id = '<id>' alone for one document, or no where for the whole collection",
		table, strings.Join(fields, ", "), have)
}

// whereTokKind is the kind of a token of a where.
type whereTokKind uint8

const (
	wtEnd     whereTokKind = iota // the end of the where
	wtIdent                       // a field name, bare or "quoted" (text: the name)
	wtString                      // a 'string' literal (text: its value)
	wtNumber                      // a number (text: as written; val: its value)
	wtParam                       // $n (n)
	wtKeyword                     // a reserved word (text: upper case; raw: as written)
	wtLParen                      // (
	wtRParen                      // )
	wtEquals                      // =
	wtDot                         // . between names: a qualified name
	wtOther                       // anything else (text: what was found)
)

// whereTok is one token of a where.
type whereTok struct {
	kind whereTokKind
	text string
	raw  string      // wtKeyword
	val  index.Value // wtNumber
	n    int         // wtParam
	pos  int         // byte offset in the where
}

// whereKeywords are the words that Postgres never reads as a bare column
// name (its reserved key words, and the non-reserved ones that make
// operators: IS, LIKE, BETWEEN…), so neither does this parser: a field of
// that name is written quoted, "user", as in Postgres. The value says
// whether the word belongs to an expression this server does not serve
// (then the 400 names it as such) rather than being a misplaced name.
// Of them only AND, TRUE and FALSE are served.
var whereKeywords = map[string]bool{
	"AND": false, "TRUE": false, "FALSE": false,
	"OR": true, "NOT": true, "NULL": true, "IS": true, "ISNULL": true, "NOTNULL": true,
	"IN": true, "LIKE": true, "ILIKE": true, "SIMILAR": true, "BETWEEN": true, "OVERLAPS": true,
	"ANY": true, "ALL": true, "SOME": true, "EXISTS": true, "CASE": true, "CAST": true,
	"COLLATE": true, "ARRAY": true, "SELECT": true, "DISTINCT": true,
	"ANALYSE": false, "ANALYZE": false, "AS": false, "ASC": false, "ASYMMETRIC": false,
	"AUTHORIZATION": false, "BINARY": false, "BOTH": false, "CHECK": false, "COLLATION": false,
	"COLUMN": false, "CONCURRENTLY": false, "CONSTRAINT": false, "CREATE": false, "CROSS": false,
	"CURRENT_CATALOG": false, "CURRENT_DATE": false, "CURRENT_ROLE": false, "CURRENT_SCHEMA": false,
	"CURRENT_TIME": false, "CURRENT_TIMESTAMP": false, "CURRENT_USER": false, "DEFAULT": false,
	"DEFERRABLE": false, "DESC": false, "DO": false, "ELSE": false, "END": false, "EXCEPT": false,
	"FETCH": false, "FOR": false, "FOREIGN": false, "FREEZE": false, "FROM": false, "FULL": false,
	"GRANT": false, "GROUP": false, "HAVING": false, "INITIALLY": false, "INNER": false,
	"INTERSECT": false, "INTO": false, "JOIN": false, "LATERAL": false, "LEADING": false,
	"LEFT": false, "LIMIT": false, "LOCALTIME": false, "LOCALTIMESTAMP": false, "NATURAL": false,
	"OFFSET": false, "ON": false, "ONLY": false, "ORDER": false, "OUTER": false, "PLACING": false,
	"PRIMARY": false, "REFERENCES": false, "RETURNING": false, "RIGHT": false, "SESSION_USER": false,
	"SYMMETRIC": false, "SYSTEM_USER": false, "TABLE": false, "TABLESAMPLE": false, "THEN": false,
	"TO": false, "TRAILING": false, "UNION": false, "UNIQUE": false, "USER": false, "USING": false,
	"VARIADIC": false, "VERBOSE": false, "WHEN": false, "WHERE": false, "WINDOW": false, "WITH": false,
}

// lexWhere splits a where into tokens, ending with a wtEnd token. It
// stops after a wtOther token, which no where that is served holds.
func lexWhere(s string) ([]whereTok, error) {
	var toks []whereTok
	for i := 0; i < len(s); {
		c := s[i]
		var t whereTok
		var err error
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			i++
			continue
		case c == '(':
			t, i = whereTok{kind: wtLParen, text: "(", pos: i}, i+1
		case c == ')':
			t, i = whereTok{kind: wtRParen, text: ")", pos: i}, i+1
		case c == '\'':
			t, i, err = lexQuoted(s, i, '\'')
		case c == '"':
			t, i, err = lexQuoted(s, i, '"')
		case c == '$':
			t, i, err = lexParam(s, i)
		case startsNumber(s, i) || c == '-' && startsNumber(s, i+1):
			t, i, err = lexNumber(s, i)
		case c == '.':
			t, i = whereTok{kind: wtDot, text: ".", pos: i}, i+1
		case isIdentStart(c):
			t, i, err = lexWord(s, i)
		case strings.IndexByte(whereOpChars, c) >= 0:
			t, i, err = lexOperator(s, i)
		case c == ':' && i+1 < len(s) && s[i+1] == ':':
			t, i = whereTok{kind: wtOther, text: "::", pos: i}, i+2
		default:
			_, size := utf8.DecodeRuneInString(s[i:])
			t, i = whereTok{kind: wtOther, text: s[i : i+size], pos: i}, i+size
		}
		if err != nil {
			return nil, err
		}
		toks = append(toks, t)
		if t.kind == wtOther {
			break // the parser refuses it: what follows is never read (and lexing stays linear)
		}
	}
	return append(toks, whereTok{kind: wtEnd, pos: len(s)}), nil
}

// hasKeyword reports whether a bare word, in upper case, is a keyword.
func hasKeyword(up string) bool {
	_, ok := whereKeywords[up]
	return ok
}

// Bare names are ASCII letters, digits and _, not starting with a digit:
// Postgres allows more (non-ASCII letters, $), which must then be quoted
// here; a refused character says so rather than being misread.
func isDigit(c byte) bool      { return '0' <= c && c <= '9' }
func isIdentStart(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' }
func isIdentChar(c byte) bool  { return isIdentStart(c) || isDigit(c) }

// startsNumber reports whether a number without sign starts at s[i]: a
// digit, or a dot and a digit (.5).
func startsNumber(s string, i int) bool {
	return i < len(s) && (isDigit(s[i]) || s[i] == '.' && i+1 < len(s) && isDigit(s[i+1]))
}

// lexQuoted reads a 'string' literal or a "quoted" name starting at s[i],
// where the quote is doubled inside.
func lexQuoted(s string, i int, quote byte) (whereTok, int, error) {
	var b strings.Builder
	for j := i + 1; j < len(s); j++ {
		if s[j] != quote {
			b.WriteByte(s[j])
			continue
		}
		if j+1 < len(s) && s[j+1] == quote {
			b.WriteByte(quote)
			j++
			continue
		}
		if quote == '\'' {
			return whereTok{kind: wtString, text: b.String(), pos: i}, j + 1, nil
		}
		if b.Len() == 0 {
			return whereTok{}, 0, whereError(`empty quoted name "" at byte %d`, i+1)
		}
		return whereTok{kind: wtIdent, text: b.String(), pos: i}, j + 1, nil
	}
	if quote == '\'' {
		return whereTok{}, 0, whereError("unterminated string literal at byte %d", i+1)
	}
	return whereTok{}, 0, whereError("unterminated quoted name at byte %d", i+1)
}

// lexParam reads $n, a reference to params[n].
func lexParam(s string, i int) (whereTok, int, error) {
	j := i + 1
	for j < len(s) && isDigit(s[j]) {
		j++
	}
	digits := s[i+1 : j]
	switch {
	case digits == "":
		return whereTok{}, 0, whereError("$ at byte %d is not a parameter: write $1, $2… (dollar quoting is not served); %s", i+1, whereServed)
	case j < len(s) && isIdentChar(s[j]):
		return whereTok{}, 0, whereError("trailing junk after parameter $%s at byte %d", clipText(digits), i+1)
	case digits[0] == '0':
		return whereTok{}, 0, whereError("parameter $%s at byte %d: parameters are numbered from $1, without leading zeros", clipText(digits), i+1)
	case len(digits) > 5:
		return whereTok{}, 0, whereError("parameter $%s at byte %d: more than %d", clipText(digits), i+1, maxWhereParam)
	}
	n, _ := strconv.Atoi(digits)
	if n > maxWhereParam {
		return whereTok{}, 0, whereError("parameter $%s at byte %d: more than %d", digits, i+1, maxWhereParam)
	}
	return whereTok{kind: wtParam, text: s[i:j], n: n, pos: i}, j, nil
}

// lexNumber reads a number as Postgres writes them (digits, with a
// fraction and an exponent, and here a leading minus: 3, -2.5, .5, 1e6)
// into its JSON value.
func lexNumber(s string, i int) (whereTok, int, error) {
	j := i
	sign := ""
	if s[j] == '-' {
		sign, j = "-", j+1
	}
	start := j
	for j < len(s) && isDigit(s[j]) {
		j++
	}
	intPart := strings.TrimLeft(s[start:j], "0")
	if intPart == "" {
		intPart = "0"
	}
	frac := ""
	if j < len(s) && s[j] == '.' {
		k := j + 1
		for k < len(s) && isDigit(s[k]) {
			k++
		}
		frac, j = s[j+1:k], k
	}
	exp := ""
	if j < len(s) && (s[j] == 'e' || s[j] == 'E') {
		k := j + 1
		if k < len(s) && (s[k] == '+' || s[k] == '-') {
			k++
		}
		if k < len(s) && isDigit(s[k]) {
			for k < len(s) && isDigit(s[k]) {
				k++
			}
			exp, j = s[j:k], k
		}
	}
	if j < len(s) && (isIdentChar(s[j]) || s[j] == '.') {
		return whereTok{}, 0, whereError("trailing junk after number %s at byte %d", clipText(s[i:j]), i+1)
	}
	text := sign + intPart
	if frac != "" {
		text += "." + frac
	}
	v, err := index.ParseValue([]byte(text + exp))
	if err != nil { // the text is a JSON number: only its exponent can be refused
		return whereTok{}, 0, whereError("number %s at byte %d is out of range (exponents beyond ±2^31 are not served)", clipText(s[i:j]), i+1)
	}
	return whereTok{kind: wtNumber, text: s[i:j], val: v, pos: i}, j, nil
}

// lexWord reads a bare name or a reserved word.
func lexWord(s string, i int) (whereTok, int, error) {
	j := i
	for j < len(s) && isIdentChar(s[j]) {
		j++
	}
	word := s[i:j]
	if j < len(s) && s[j] == '\'' {
		return whereTok{}, 0, whereError("prefixed string %s'…' at byte %d is not served; %s", clipText(word), i+1, whereServed)
	}
	if up := strings.ToUpper(word); hasKeyword(up) {
		return whereTok{kind: wtKeyword, text: up, raw: word, pos: i}, j, nil
	}
	return whereTok{kind: wtIdent, text: word, pos: i}, j, nil
}

// whereOpChars are the characters Postgres builds operators of.
const whereOpChars = "+-*/<>=~!@#%^&|`?"

// lexOperator reads an operator as Postgres does: the longest run of
// operator characters, except that a run cannot end in + or - unless it
// holds one of ~!@#%^&|`? (so a=-1 is a = -1), and -- or /* starts a
// comment.
func lexOperator(s string, i int) (whereTok, int, error) {
	j := i
	for j < len(s) && strings.IndexByte(whereOpChars, s[j]) >= 0 {
		j++
	}
	op := s[i:j]
	for _, c := range []string{"--", "/*"} {
		if k := strings.Index(op, c); k >= 0 {
			return whereTok{}, 0, whereError("comment %s at byte %d is not served", c, i+k+1)
		}
	}
	if !strings.ContainsAny(op, "~!@#%^&|`?") {
		if op = strings.TrimRight(op, "+-"); op == "" {
			op = s[i : i+1]
		}
	}
	if op == "=" {
		return whereTok{kind: wtEquals, text: op, pos: i}, i + 1, nil
	}
	return whereTok{kind: wtOther, text: op, pos: i}, i + len(op), nil
}

// whereParser reads conditions from the tokens of a where.
type whereParser struct {
	toks   []whereTok
	at     int
	params map[int]string
	conds  []whereCond
}

// peek returns the token at hand; the last token is wtEnd, which the
// parser never moves past.
func (p *whereParser) peek() whereTok { return p.toks[p.at] }

// conjunction reads cond (AND cond)*.
func (p *whereParser) conjunction(depth int) error {
	if err := p.condition(depth); err != nil {
		return err
	}
	for t := p.peek(); t.kind == wtKeyword && t.text == "AND"; t = p.peek() {
		p.at++
		if err := p.condition(depth); err != nil {
			return err
		}
	}
	return nil
}

// condition reads field = literal, literal = field, or a parenthesized
// conjunction.
func (p *whereParser) condition(depth int) error {
	if t := p.peek(); t.kind == wtLParen {
		if depth >= maxWhereDepth {
			return whereError("parentheses nested more than %d deep at byte %d", maxWhereDepth, t.pos+1)
		}
		p.at++
		if err := p.conjunction(depth + 1); err != nil {
			return err
		}
		if p.peek().kind != wtRParen {
			return p.unexpected("AND or )")
		}
		p.at++
		return nil
	}
	left, err := p.operand()
	if err != nil {
		return err
	}
	if p.peek().kind != wtEquals {
		return p.unexpected("=")
	}
	p.at++
	right, err := p.operand()
	if err != nil {
		return err
	}
	switch {
	case left.isField && right.isField:
		return whereError("the condition at byte %d compares two fields; compare a field with a literal; %s", left.pos+1, whereServed)
	case !left.isField && !right.isField:
		return whereError("the condition at byte %d compares two literals; compare a field with a literal; %s", left.pos+1, whereServed)
	case right.isField:
		left, right = right, left
	}
	p.conds = append(p.conds, whereCond{path: left.path, pos: left.pos, lit: right.lit})
	return nil
}

// whereOperand is one side of =: a field or a literal.
type whereOperand struct {
	isField bool
	path    string
	lit     whereLiteral
	pos     int
}

// operand reads a field or a literal.
func (p *whereParser) operand() (whereOperand, error) {
	t := p.peek()
	switch {
	case t.kind == wtIdent:
		return p.field()
	case t.kind == wtString:
		p.at++
		return stringOperand(t.text, t.pos), nil
	case t.kind == wtNumber:
		p.at++
		return whereOperand{lit: whereLiteral{val: t.val}, pos: t.pos}, nil
	case t.kind == wtKeyword && (t.text == "TRUE" || t.text == "FALSE"):
		p.at++
		v, _ := index.ParseValue([]byte(strings.ToLower(t.text)))
		return whereOperand{lit: whereLiteral{val: v}, pos: t.pos}, nil
	case t.kind == wtParam:
		v, ok := p.params[t.n]
		if !ok {
			return whereOperand{}, whereError("%s at byte %d has no params[%d]", t.text, t.pos+1, t.n)
		}
		if len(v) > maxWhereLen { // a literal in the where could not be longer
			return whereOperand{}, whereError("params[%d] for %s at byte %d is longer than %d bytes", t.n, t.text, t.pos+1, maxWhereLen)
		}
		if !utf8.ValidString(v) {
			return whereOperand{}, whereError("params[%d] for %s at byte %d is not valid UTF-8", t.n, t.text, t.pos+1)
		}
		p.at++
		return stringOperand(v, t.pos), nil
	}
	return whereOperand{}, p.unexpected("a field or a literal")
}

// stringOperand is a 'string' literal or a parameter: a JSON string, never
// a number ('3' is not 3, as in Postgres for a text column).
func stringOperand(s string, pos int) whereOperand {
	b, _ := json.Marshal(s) // valid UTF-8: the where and the params are checked
	v, _ := index.ParseValue(b)
	return whereOperand{lit: whereLiteral{val: v, str: s, isStr: true}, pos: pos}
}

// field reads a field name: bare, or quoted, where dots separate the keys
// of a path ("stats.level"). A dot after a name is SQL's table.column, not
// a path: refused with the quoted spelling to use instead.
func (p *whereParser) field() (whereOperand, error) {
	t := p.peek()
	p.at++
	if next := p.peek(); next.kind == wtDot {
		path := t.text
		if after := p.toks[p.at+1]; after.kind == wtIdent {
			path += "." + after.text
		}
		return whereOperand{}, whereError("qualified name at byte %d: SQL reads a dotted name as table.column; for the field path write %s",
			t.pos+1, quoteName(clipText(path)))
	}
	if next := p.peek(); next.kind == wtLParen {
		return whereOperand{}, whereError("function call %s( at byte %d is not served; %s", clipText(t.text), t.pos+1, whereServed)
	}
	path, err := normPath(t.text)
	if err != nil {
		// The where is UTF-8 and a name is not empty: the path has an empty
		// key. (The index error is not quoted: it holds the whole name.)
		return whereOperand{}, whereError("field %s at byte %d is not a field path: dots separate non-empty keys, as in \"stats.level\"",
			quoteName(clipText(t.text)), t.pos+1)
	}
	return whereOperand{isField: true, path: path, pos: t.pos}, nil
}

// quoteName writes a name as a quoted SQL identifier.
func quoteName(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// unexpected is the error for the token at hand when want was expected:
// it names what was found, and for a construct that is not served, says
// what is.
func (p *whereParser) unexpected(want string) error {
	t := p.peek()
	switch t.kind {
	case wtEnd:
		return whereError("the where ends early: expected %s", want)
	case wtKeyword:
		switch expr := whereKeywords[t.text]; {
		case t.text == "AND", t.text == "TRUE", t.text == "FALSE": // served, but not here
		case t.text == "OR":
			return whereError("OR at byte %d is not served: conditions are joined by AND only; %s", t.pos+1, whereServed)
		case expr:
			return whereError("%s at byte %d is not served; %s", t.text, t.pos+1, whereServed)
		default:
			return whereError("%s at byte %d is a reserved word of SQL, not a field: to name the field, quote it: %s",
				t.raw, t.pos+1, quoteName(t.raw))
		}
	case wtOther:
		what, note := fmt.Sprintf("character %q", t.text), " (expected "+want+")"
		switch {
		case t.text == "::":
			what = "cast ::"
		case t.text == "<", t.text == ">", t.text == "<=", t.text == ">=", t.text == "<>", t.text == "!=":
			what, note = "comparison "+t.text, ": the only comparison is ="
		case strings.IndexByte(whereOpChars, t.text[0]) >= 0:
			what = "operator " + clipText(t.text)
		}
		return whereError("%s at byte %d is not served%s; %s", what, t.pos+1, note, whereServed)
	}
	return whereError("expected %s at byte %d, found %s; %s", want, t.pos+1, describeTok(t), whereServed)
}

// describeTok names a token in an error message.
func describeTok(t whereTok) string {
	switch t.kind {
	case wtIdent:
		return "field " + quoteName(clipText(t.text))
	case wtString:
		return "string '" + strings.ReplaceAll(clipText(t.text), "'", "''") + "'"
	case wtNumber:
		return "number " + clipText(t.text)
	}
	return clipText(t.text)
}
