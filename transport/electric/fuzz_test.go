package electric

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

// FuzzWhere checks shapeTarget on arbitrary tables, wheres and params:
// it never panics; it refuses with a *paramError naming table (exactly
// when the table is not a collection) or where; what it accepts is a
// target the broker can follow (an index of the table with all its terms,
// each a canonical value; a document of the table with a non-empty id);
// and the accepted target, written back as a where in a canonical syntax
// of our own, reads back as the same target (two spellings: fields first
// in the index's order, and literals first in reverse order, parenthesized).
func FuzzWhere(f *testing.F) {
	for _, s := range []struct{ table, where, p1, p2 string }{
		{"spells", "", "", ""},
		{"spells", "element = 'fire'", "", ""},
		{"spells", `"stats.level" = 3 AND element = $1`, "fire", ""},
		{"spells", `(a = 1) AND (b = 'x''y')`, "", ""},
		{"spells", `id = '1'`, "", ""},
		{"spells", `id = $2`, "", "a'b"},
		{"spells", `id = '1' AND x = -2.5e3`, "", ""},
		{"spells", `a = TRUE and b = false`, "", ""},
		{"spells", `'3' = element`, "", ""},
		{"spells", `a=-1AND b=.5`, "", ""},
		{"spells", `a = 007 AND b = 5.`, "", ""},
		{"odd", `"or" = 1 AND "Name" = 'n' AND "a""b" = 2`, "", ""},
		{"users", "email = $1", "a@b.c", ""},
		{"spells", "element = 'fire' OR element = 'water'", "", ""},
		{"spells", "element IN ('fire', 'water')", "", ""},
		{"spells", "element LIKE 'f%'", "", ""},
		{"spells", "element IS NULL", "", ""},
		{"spells", "element <> 'fire'", "", ""},
		{"spells", "element = 'fire'::text", "", ""},
		{"spells", "stats.level = 3", "", ""},
		{"spells", "element = 'fire' -- comment", "", ""},
		{"spells", "element = $3", "", ""},
		{"spells", "element = 1e9999999999", "", ""},
		{"spells", "((((element = 'fire'))))", "", ""},
		{"nope", "element = 'fire'", "", ""},
		{"", "", "", ""},
	} {
		f.Add(s.table, s.where, s.p1, s.p2)
	}
	f.Fuzz(func(t *testing.T, table, where, p1, p2 string) {
		params := map[int]string{1: p1, 2: p2}
		target, err := shapeTarget(table, where, params, whereSchema)
		known := slices.Contains(whereSchema.Collections, table)
		if err != nil {
			var pe *paramError
			if !errors.As(err, &pe) {
				t.Fatalf("%T %v: not a *paramError", err, err)
			}
			if want := map[bool]string{false: "table", true: "where"}[known]; pe.param != want {
				t.Fatalf("%v: param %q, want %q", err, pe.param, want)
			}
			// Bounded whatever the input: at most 8 names of 64 bytes quoted,
			// and this schema's indexes.
			if pe.why == "" || len(pe.why) > 2048 || !utf8.ValidString(pe.why) {
				t.Fatalf("reason %q: empty, too long or not UTF-8", pe.why)
			}
			return
		}
		checkWhereTarget(t, table, where, target)
		for _, again := range renderWhere(t, target) {
			back, err := shapeTarget(table, again, nil, whereSchema)
			if err != nil || !reflect.DeepEqual(back, target) {
				t.Fatalf("%q → %v, written back as %q → %v, %v", where, target, again, back, err)
			}
		}
	})
}

// checkWhereTarget checks that an accepted target is one the broker takes
// for the table.
func checkWhereTarget(t *testing.T, table, where string, target subscription.Target) {
	t.Helper()
	switch target.Kind {
	case subscription.KindCollection:
		if target.Collection != table || strings.Trim(where, " \t\r\n\f\v") != "" {
			t.Fatalf("%q → %v", where, target)
		}
	case subscription.KindDocument:
		if target.Ref.Collection != table || target.Ref.ID == "" || !utf8.ValidString(target.Ref.ID) {
			t.Fatalf("%q → %v", where, target)
		}
	case subscription.KindIndex:
		i := slices.IndexFunc(whereSchema.Indexes, func(d index.Definition) bool { return d.Name == target.Index })
		if i < 0 || whereSchema.Indexes[i].Collection != table || len(target.Terms) != len(whereSchema.Indexes[i].Terms) {
			t.Fatalf("%q → %v: not an index of %s with all its terms", where, target, table)
		}
		for _, v := range target.Terms {
			if back, err := index.ParseValue(v.AppendJSON(nil)); err != nil || back != v {
				t.Fatalf("%q → term %v: not canonical (%v)", where, v, err)
			}
		}
	default:
		t.Fatalf("%q → %v: no kind", where, target)
	}
}

// renderWhere writes a target back as wheres in a canonical syntax: every
// name quoted, every literal written anew from its value. It returns two
// spellings of the same conditions.
func renderWhere(t *testing.T, target subscription.Target) []string {
	t.Helper()
	var fields, lits []string
	switch target.Kind {
	case subscription.KindCollection:
		return []string{""}
	case subscription.KindDocument:
		fields, lits = []string{"id"}, []string{renderString(target.Ref.ID)}
	case subscription.KindIndex:
		i := slices.IndexFunc(whereSchema.Indexes, func(d index.Definition) bool { return d.Name == target.Index })
		fields = whereSchema.Indexes[i].Terms
		for _, v := range target.Terms {
			lits = append(lits, renderLiteral(t, v))
		}
	}
	var forward, backward []string
	for i := range fields {
		forward = append(forward, quoteName(fields[i])+" = "+lits[i])
		j := len(fields) - 1 - i
		backward = append(backward, "("+lits[j]+"="+quoteName(fields[j])+")")
	}
	return []string{strings.Join(forward, " AND "), strings.Join(backward, "and")}
}

// renderLiteral writes a term as a where literal: 'string', number,
// TRUE or FALSE.
func renderLiteral(t *testing.T, v index.Value) string {
	t.Helper()
	text := v.String()
	switch {
	case text == "true", text == "false":
		return strings.ToUpper(text)
	case text[0] == '"':
		var s string
		if err := json.Unmarshal([]byte(text), &s); err != nil {
			t.Fatal(err)
		}
		return renderString(s)
	case text[0] == '-' || text[0] >= '0' && text[0] <= '9':
		return text
	}
	t.Fatalf("term %s: not a literal a where can hold", text)
	return ""
}

// renderString writes a 'string' literal.
func renderString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// FuzzOffset checks parseOffset: it never panics; it refuses with
// errForeignOffset or an offset *paramError; and an accepted offset has
// one spelling, the input, which String writes back.
func FuzzOffset(f *testing.F) {
	for _, s := range []string{"-1", "now", "0_0", "1796410559680691_0", "18446744073709551615_0", "18446744073709551616_0",
		"0_inf", "1_1", "1_00", "01_0", "+1_0", "-1_0", "", "NOW", "1_0_0", "0/1234567"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		o, err := parseOffset(s)
		if err != nil {
			var pe *paramError
			// The reason quotes at most 64 bytes of the input, 4 characters a byte.
			if err != errForeignOffset && (!errors.As(err, &pe) || pe.param != "offset" || pe.why == "" || len(pe.why) > 400 || !utf8.ValidString(pe.why)) {
				t.Fatalf("parseOffset(%q): %v", s, err)
			}
			if err == errForeignOffset && !strings.Contains(s, "_") {
				t.Fatalf("parseOffset(%q): foreign, but not <a>_<b>", s)
			}
			return
		}
		if o.String() != s {
			t.Fatalf("parseOffset(%q) = %+v, written %q", s, o, o.String())
		}
		if back, err := parseOffset(o.String()); err != nil || back != o {
			t.Fatalf("%q reads back as %+v, %v", s, back, err)
		}
	})
}

// FuzzHandle checks parseHandle: it never panics; it refuses with
// errMalformedHandle; an accepted handle has one spelling, the input; and
// every handle makeHandle writes reads back with its hash and txn.
func FuzzHandle(f *testing.F) {
	for _, s := range []string{"0123456789abcdef-0", "0123456789abcdef-1796410559680691", "0123456789abcdef-18446744073709551615",
		"0123456789abcdef-18446744073709551616", "0123456789ABCDEF-1", "0123456789abcdef-01", "0123456789abcdef--1",
		"0123456789abcdef-1-2", "", "-", "spells"} {
		f.Add(s, uint64(len(s)))
	}
	f.Fuzz(func(t *testing.T, h string, s uint64) {
		hash, txn, err := parseHandle(h)
		switch {
		case err != nil && !errors.Is(err, errMalformedHandle):
			t.Fatalf("parseHandle(%q): %v", h, err)
		case err == nil && hash+"-"+strconv.FormatUint(uint64(txn), 10) != h:
			t.Fatalf("parseHandle(%q) = %q, %d", h, hash, txn)
		}
		var log txlog.ID
		copy(log[:], h)
		made := makeHandle(log, h, txlog.Txn(s))
		hash, txn, err = parseHandle(made)
		if err != nil || hash != shapeHash(log, h) || txn != txlog.Txn(s) {
			t.Fatalf("makeHandle(…, %q, %d) = %q reads back as %q, %d, %v", h, s, made, hash, txn, err)
		}
	})
}
