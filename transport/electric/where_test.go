package electric

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

// whereSchema is the schema the where tests and FuzzWhere resolve against:
// indexes with one and two terms, a nested path, a term named id, names
// that need quoting, an index whose terms repeat another's (the first
// defined wins) and a term-less one (never named by a where).
var whereSchema = index.Schema{
	Collections: []string{"spells", "users", "odd"},
	Indexes: []index.Definition{
		{Name: "spells_all", Collection: "spells"},
		{Name: "spells_by_element", Collection: "spells", Terms: []string{"element"}},
		{Name: "spells_by_level_element", Collection: "spells", Terms: []string{"stats.level", "element"}},
		{Name: "spells_by_a_b", Collection: "spells", Terms: []string{"a", "b"}},
		{Name: "spells_by_id_x", Collection: "spells", Terms: []string{"id", "x"}},
		{Name: "spells_by_element_again", Collection: "spells", Terms: []string{"element"}, Values: []string{"name"}},
		{Name: "users_by_email", Collection: "users", Terms: []string{"email"}},
		{Name: "odd_by_names", Collection: "odd", Terms: []string{`a"b`, "Name", "or"}},
	},
}

// match is the index target on terms given as JSON texts.
func match(t *testing.T, name string, terms ...string) subscription.Target {
	t.Helper()
	target := subscription.Target{Kind: subscription.KindIndex, Index: name}
	for _, text := range terms {
		v, err := index.ParseValue([]byte(text))
		if err != nil {
			t.Fatal(err)
		}
		target.Terms = append(target.Terms, v)
	}
	return target
}

// TestShapeTargetAccepts checks the wheres that are served, each with the
// target it names: the collection, one document, or an index with its
// terms in the index's order whatever the order of the conditions.
func TestShapeTargetAccepts(t *testing.T) {
	p1 := map[int]string{1: "fire"}
	for _, c := range []struct {
		table, where string
		params       map[int]string
		want         subscription.Target
	}{
		{"spells", "", nil, subscription.Collection("spells")},
		{"users", " \t\r\n ", nil, subscription.Collection("users")},
		{"spells", "element = 'fire'", nil, match(t, "spells_by_element", `"fire"`)},
		{"spells", "'fire'=element", nil, match(t, "spells_by_element", `"fire"`)},
		{"spells", "element = 'it''s'", nil, match(t, "spells_by_element", `"it's"`)},
		{"spells", "element = ''", nil, match(t, "spells_by_element", `""`)},
		{"spells", "element = 'é☃ \"x\" \\n'", nil, match(t, "spells_by_element", `"é☃ \"x\" \\n"`)},
		{"spells", "element = '3'", nil, match(t, "spells_by_element", `"3"`)},
		{"spells", "element = 3", nil, match(t, "spells_by_element", `3`)},
		{"spells", `"stats.level" = 3 AND element = $1`, p1, match(t, "spells_by_level_element", `3`, `"fire"`)},
		{"spells", `element = $1 and "stats.level" = 3.0`, p1, match(t, "spells_by_level_element", `3`, `"fire"`)},
		{"spells", `$1 = element aNd 3 = "stats.level"`, p1, match(t, "spells_by_level_element", `3`, `"fire"`)},
		{"spells", `(a = 1) AND (b = 'x''y')`, nil, match(t, "spells_by_a_b", `1`, `"x'y"`)},
		{"spells", `((b = 'x''y' AND (a = -1.5e1)))`, nil, match(t, "spells_by_a_b", `-15`, `"x'y"`)},
		{"spells", `a=-1 AND b=.5`, nil, match(t, "spells_by_a_b", `-1`, `0.5`)},
		{"spells", `a = 007 AND b = 5.`, nil, match(t, "spells_by_a_b", `7`, `5`)},
		{"spells", `a = 1E+2 AND b = -.25e-1`, nil, match(t, "spells_by_a_b", `100`, `-0.025`)},
		{"spells", `a = TRUE AND b = false`, nil, match(t, "spells_by_a_b", `true`, `false`)},
		{"spells", `b = $2 AND a = $1`, map[int]string{1: "1", 2: ""}, match(t, "spells_by_a_b", `"1"`, `""`)},
		{"spells", "id = '1'", nil, subscription.Document(txlog.Ref{Collection: "spells", ID: "1"})},
		{"spells", `"id" = $1`, map[int]string{1: "a'b \"c\""}, subscription.Document(txlog.Ref{Collection: "spells", ID: "a'b \"c\""})},
		{"spells", "(('x y' = id))", nil, subscription.Document(txlog.Ref{Collection: "spells", ID: "x y"})},
		{"spells", "id = '1' AND x = 2", nil, match(t, "spells_by_id_x", `"1"`, `2`)},
		{"users", "email = $1", map[int]string{1: "a@b.c"}, match(t, "users_by_email", `"a@b.c"`)},
		{"odd", `"or" = 1 AND "Name" = 'n' AND "a""b" = 2`, nil, match(t, "odd_by_names", `2`, `"n"`, `1`)},
		{"spells", strings.Repeat("(", maxWhereDepth) + "element = 'fire'" + strings.Repeat(")", maxWhereDepth), nil,
			match(t, "spells_by_element", `"fire"`)},
	} {
		got, err := shapeTarget(c.table, c.where, c.params, whereSchema)
		if err != nil {
			t.Errorf("%s %q: %v", c.table, c.where, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s %q: %v, want %v", c.table, c.where, got, c.want)
		}
	}
}

// TestShapeTargetStringIsNotNumber checks that a quoted '3' and 3 are
// different terms: the index holds "3" and 3 apart.
func TestShapeTargetStringIsNotNumber(t *testing.T) {
	s, err1 := shapeTarget("spells", "element = '3'", nil, whereSchema)
	n, err2 := shapeTarget("spells", "element = 3", nil, whereSchema)
	p, err3 := shapeTarget("spells", "element = $1", map[int]string{1: "3"}, whereSchema)
	if err1 != nil || err2 != nil || err3 != nil {
		t.Fatal(err1, err2, err3)
	}
	if s.Terms[0].Equal(n.Terms[0]) {
		t.Errorf("'3' and 3 give the same term %v", s.Terms[0])
	}
	if !p.Terms[0].Equal(s.Terms[0]) {
		t.Errorf("$1 = 3 gives %v, want the string %v", p.Terms[0], s.Terms[0])
	}
}

// TestShapeTargetRefuses checks that what is not served is a 400 on the
// right parameter whose reason says what was found, and where.
func TestShapeTargetRefuses(t *testing.T) {
	for _, c := range []struct {
		table, where string
		params       map[int]string
		param        string
		why          []string // substrings of the reason
	}{
		{"", "", nil, "table", []string{"missing"}},
		{"nope", "", nil, "table", []string{`unknown collection "nope"`}},
		{"Spells", "", nil, "table", []string{`"Spells"`}},
		{"nope", "a OR b", nil, "table", []string{"unknown"}},
		{"spells", "element = 'fire' OR element = 'water'", nil, "where", []string{"OR at byte 18", "joined by AND", "served:"}},
		{"spells", "element IN ('fire')", nil, "where", []string{"IN at byte 9", "served:"}},
		{"spells", "element LIKE 'f%'", nil, "where", []string{"LIKE at byte 9"}},
		{"spells", "element ilike 'f%'", nil, "where", []string{"ILIKE at byte 9"}},
		{"spells", "element <> 'fire'", nil, "where", []string{"comparison <> at byte 9 is not served: the only comparison is ="}},
		{"spells", "element != 'fire'", nil, "where", []string{"comparison !="}},
		{"spells", "element<3", nil, "where", []string{"comparison < at byte 8"}},
		{"spells", "element >= 3", nil, "where", []string{"comparison >="}},
		{"spells", "element == 3", nil, "where", []string{"operator =="}},
		{"spells", "element = - 3", nil, "where", []string{"operator -"}},
		{"spells", "element IS NULL", nil, "where", []string{"IS at byte 9"}},
		{"spells", "element = NULL", nil, "where", []string{"NULL at byte 11"}},
		{"spells", "NOT element = 'x'", nil, "where", []string{"NOT at byte 1"}},
		{"spells", "element = 'fire'::text", nil, "where", []string{"cast ::"}},
		{"spells", "element = 'fire' -- x", nil, "where", []string{"comment -- at byte 18"}},
		{"spells", "element = /* x */ 'fire'", nil, "where", []string{"comment /*"}},
		{"spells", "lower(element) = 'fire'", nil, "where", []string{"function call lower("}},
		{"spells", "stats.level = 3", nil, "where", []string{"table.column", `"stats.level"`}},
		{"spells", `"stats"."level" = 3`, nil, "where", []string{"table.column", `"stats.level"`}},
		{"spells", `"a..b" = 1`, nil, "where", []string{`field "a..b" at byte 1 is not a field path: dots separate non-empty keys`}},
		{"spells", `".a" = 1`, nil, "where", []string{`field ".a" at byte 1 is not a field path`}},
		{"spells", `"a." = 1`, nil, "where", []string{`field "a." at byte 1 is not a field path`}},
		{"spells", "element = $2", map[int]string{1: "fire"}, "where", []string{"$2 at byte 11 has no params[2]"}},
		{"spells", "element = $1", nil, "where", []string{"no params[1]"}},
		{"spells", "element = $0", nil, "where", []string{"numbered from $1"}},
		{"spells", "element = $01", map[int]string{1: "fire"}, "where", []string{"numbered from $1"}},
		{"spells", "element = $65536", nil, "where", []string{"more than 65535"}},
		{"spells", "element = $1x", nil, "where", []string{"trailing junk"}},
		{"spells", "element = $$fire$$", nil, "where", []string{"dollar quoting"}},
		{"spells", "element = $1", map[int]string{1: "\xff"}, "where", []string{"params[1]", "UTF-8"}},
		{"spells", "element = $1", map[int]string{1: strings.Repeat("x", maxWhereLen+1)}, "where", []string{"params[1] for $1 at byte 11 is longer than 4096 bytes"}},
		{"spells", "element = E'fire'", nil, "where", []string{"prefixed string E'…'"}},
		{"spells", "element = 'fire", nil, "where", []string{"unterminated string literal at byte 11"}},
		{"spells", `"element = 1`, nil, "where", []string{"unterminated quoted name at byte 1"}},
		{"spells", `"" = 1`, nil, "where", []string{`empty quoted name`}},
		{"spells", "element = 'fire' AND element = 'water'", nil, "where", []string{`field "element" is compared twice (at bytes 1 and 22)`}},
		{"spells", manyFields(9), nil, "where", []string{`"f0", "f1", "f2", "f3", "f4", "f5", "f6", "f7", … (9 fields);`}},
		{"spells", "element = 1 AND \"stats.level\" = 2 AND a = 3", nil, "where",
			[]string{`exactly the terms "a", "element", "stats.level"`, "spells_by_element (element)", "spells_by_level_element (stats.level, element)", "id = '<id>'"}},
		{"spells", "Element = 'fire'", nil, "where", []string{`terms "Element"`}},
		{"users", "element = 'fire'", nil, "where", []string{`no index of "users"`, "users_by_email (email)"}},
		{"odd", `"a""b" = 1`, nil, "where", []string{`odd_by_names (a"b, Name, or)`}},
		{"spells", "id = 1", nil, "where", []string{"id at byte 1 is compared with 1", "text"}},
		{"spells", "id = ''", nil, "where", []string{"empty id"}},
		{"spells", "a = b", nil, "where", []string{"two fields"}},
		{"spells", "1 = 1", nil, "where", []string{"two literals"}},
		{"spells", "element = 'fire' AND", nil, "where", []string{"ends early"}},
		{"spells", "user = 'me'", nil, "where", []string{`user at byte 1 is a reserved word of SQL, not a field: to name the field, quote it: "user"`}},
		{"spells", "element = 'fire' AND Current_Date = 1", nil, "where", []string{`Current_Date at byte 22 is a reserved word`, `"Current_Date"`}},
		{"spells", "element = 'fire' AND AND", nil, "where", []string{"expected a field or a literal at byte 22, found AND"}},
		{"spells", "(element = 'fire'", nil, "where", []string{"ends early: expected AND or )"}},
		{"spells", "element = 'fire')", nil, "where", []string{"found )"}},
		{"spells", "()", nil, "where", []string{"expected a field or a literal at byte 2, found )"}},
		{"spells", "element 'fire'", nil, "where", []string{"expected = at byte 9, found string 'fire'"}},
		{"spells", "element = 'fire'; DROP TABLE spells", nil, "where", []string{`character ";" at byte 17`}},
		{"spells", "element = 1abc", nil, "where", []string{"trailing junk after number 1"}},
		{"spells", "element = 1.2.3", nil, "where", []string{"trailing junk"}},
		{"spells", "element = -1AND a = 2", nil, "where", []string{"trailing junk"}},
		{"spells", "element = 1e9999999999", nil, "where", []string{"number 1e9999999999 at byte 11", "out of range"}},
		{"spells", "élément = 1", nil, "where", []string{`character "é" at byte 1`}},
		{"spells", "element = \xff", nil, "where", []string{"not valid UTF-8"}},
		{"spells", strings.Repeat(" ", maxWhereLen+1), nil, "where", []string{"longer than 4096 bytes"}},
		{"spells", strings.Repeat("(", maxWhereDepth+1) + "element = 'fire'" + strings.Repeat(")", maxWhereDepth+1), nil, "where",
			[]string{"nested more than 32 deep at byte 33"}},
	} {
		_, err := shapeTarget(c.table, c.where, c.params, whereSchema)
		var pe *paramError
		if !errors.As(err, &pe) {
			t.Errorf("%s %q: %v, want a *paramError", c.table, c.where, err)
			continue
		}
		if pe.param != c.param {
			t.Errorf("%s %q: param %q (%s), want %q", c.table, c.where, pe.param, pe.why, c.param)
		}
		for _, w := range c.why {
			if !strings.Contains(pe.why, w) {
				t.Errorf("%s %q: %q does not say %q", c.table, c.where, pe.why, w)
			}
		}
	}
}

// TestShapeTargetFirstIndexWins checks that, of two indexes with the same
// terms, the where names the one defined first, whatever the order of its
// conditions: a shape must resolve to one set, every time.
func TestShapeTargetFirstIndexWins(t *testing.T) {
	got, err := shapeTarget("spells", "element = 'fire'", nil, whereSchema)
	if err != nil || got.Index != "spells_by_element" {
		t.Fatalf("%v %v, want spells_by_element", got, err)
	}
	swapped := whereSchema
	swapped.Indexes = append([]index.Definition(nil), whereSchema.Indexes...)
	i, j := 1, 5 // spells_by_element and spells_by_element_again
	swapped.Indexes[i], swapped.Indexes[j] = swapped.Indexes[j], swapped.Indexes[i]
	got, err = shapeTarget("spells", "element = 'fire'", nil, swapped)
	if err != nil || got.Index != "spells_by_element_again" {
		t.Fatalf("%v %v, want spells_by_element_again", got, err)
	}
}

// TestShapeTargetClipsMessages checks that a 400 does not echo long outside
// text whole.
func TestShapeTargetClipsMessages(t *testing.T) {
	long := strings.Repeat("x", maxWhereLen-20)
	for _, c := range []struct{ table, where string }{
		{long, ""},
		{"spells", long + " = 1"},
		{"spells", `"` + long + `" = 1 AND a = 1`},
		{"spells", long + ".y = 1"},
		{"spells", "a = " + strings.Repeat("1", maxWhereLen-10) + "x"},
		{"spells", "id = " + strings.Repeat("5", maxWhereLen-10)},
		{"spells", "id = " + strings.Repeat("5", maxWhereLen-10) + "e99999999999"},
		{"spells", "a = $" + strings.Repeat("5", maxWhereLen-10)},
		{"spells", "a = $" + strings.Repeat("5", maxWhereLen-10) + "x"},
		{"spells", "a = $" + strings.Repeat("0", maxWhereLen-10)},
		{"spells", "(" + strings.Repeat("a", maxWhereLen-10) + "()"},
		{"spells", "a = 1 AND " + strings.Repeat("?", maxWhereLen-20)},
		{"spells", manyFields(200)},
		{"spells", `"` + strings.Repeat(".", maxWhereLen-10) + `" = 1`},
		{"spells", "a = 1 AND " + strings.Repeat("é", (maxWhereLen-20)/2) + " = 1"},
	} {
		_, err := shapeTarget(c.table, c.where, nil, whereSchema)
		var pe *paramError
		if !errors.As(err, &pe) {
			t.Fatalf("%.20q: %v", c.where, err)
		}
		if len(pe.why) > 600 {
			t.Errorf("%.20q: a reason of %d bytes: %.100s…", c.where, len(pe.why), pe.why)
		}
	}
}

// manyFields is a where comparing n different fields.
func manyFields(n int) string {
	conds := make([]string, n)
	for i := range conds {
		conds[i] = fmt.Sprintf("f%d = %d", i, i)
	}
	return strings.Join(conds, " AND ")
}

// TestShapeTargetLinear checks that the longest wheres of repeated
// characters, the worst cases for a lexer, are read in bounded time (a
// run of + once took seconds, lexed again from each of its characters).
// The bound is far above the milliseconds they take.
func TestShapeTargetLinear(t *testing.T) {
	for _, c := range "+-=(').e$\"a1 " {
		where := "a" + strings.Repeat(string(c), maxWhereLen-1)
		start := time.Now()
		shapeTarget("spells", where, nil, whereSchema)
		if d := time.Since(start); d > time.Second {
			t.Errorf("a where of %q×%d took %v", c, maxWhereLen-1, d)
		}
	}
}
