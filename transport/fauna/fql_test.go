package fauna

import (
	"errors"
	"testing"

	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

var fqlSchema = index.Schema{
	Collections: []string{"spells", "potions"},
	Indexes: []index.Definition{
		{Name: "byElement", Collection: "spells", Terms: []string{"element"}},
		{Name: "byPair", Collection: "spells", Terms: []string{"a", "b"}},
		{Name: "everything", Collection: "spells"},
	},
}

func mustMatch(t *testing.T, name string, terms ...any) subscription.Target {
	t.Helper()
	m, err := subscription.Match(name, terms...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestParseEventSource: the forms served, with literals, interpolated
// values and arguments, become the targets they name.
func TestParseEventSource(t *testing.T) {
	doc1 := subscription.Document(txlog.Ref{Collection: "spells", ID: "1"})
	for _, c := range []struct {
		body string
		want subscription.Target
	}{
		{`{"query":{"fql":["spells.all().eventSource()"]}}`, subscription.Collection("spells")},
		{`{"query":" spells . all ( ) . eventSource ( ) "}`, subscription.Collection("spells")},
		{`{"query":{"fql":[{"value":{"@mod":"spells"}},".all().eventSource()"]}}`, subscription.Collection("spells")},
		{`{"query":{"fql":["c.all().eventSource()"]},"arguments":{"c":{"@mod":"spells"}}}`, subscription.Collection("spells")},
		{`{"query":{"fql":["Set.single(spells.byId(\"1\")).eventSource()"]}}`, doc1},
		{`{"query":{"fql":["Set.single(spells.byId('1')!).eventSource()"]}}`, doc1},
		{`{"query":{"fql":["Set.single(spells.byId(",{"value":"1"},")).eventSource()"]}}`, doc1},
		{`{"query":{"fql":["Set.single(spells.byId(",{"value":{"@int":"1"}},")).eventSource()"]}}`, doc1},
		{`{"query":{"fql":["Set.single(",{"value":{"@ref":{"id":"1","coll":{"@mod":"spells"}}}},").eventSource()"]}}`, doc1},
		{`{"query":{"fql":["Set.single(spells.byId(id)).eventSource()"]},"arguments":{"id":"1"}}`, doc1},
		{`{"query":{"fql":["spells.byId(\"1\").eventSource()"]}}`, doc1},
		// A nested query, as fql`${fql`spells`}.all()` sends it.
		{`{"query":{"fql":[{"fql":["spells"]},".all().eventSource()"]}}`, subscription.Collection("spells")},
		{`{"query":{"fql":["spells.byElement(\"fire\").eventSource()"]}}`, mustMatch(t, "byElement", "fire")},
		// An interpolated term with quotes and a backslash is a value.
		{`{"query":{"fql":["spells.byElement(",{"value":"a\") x \\"},").eventSource()"]}}`, mustMatch(t, "byElement", `a") x \`)},
		{`{"query":{"fql":["spells.byElement('it\\'s \\u00e9\\u{1F525}').eventSource()"]}}`, mustMatch(t, "byElement", "it's é🔥")},
		{`{"query":{"fql":["spells.byPair(1, true).eventSource()"]}}`, mustMatch(t, "byPair", 1, true)},
		{`{"query":{"fql":["spells.byPair(",{"value":{"@long":"7"}},", ",{"value":{"@double":"1.5"}},").eventSource()"]}}`, mustMatch(t, "byPair", 7, 1.5)},
		{`{"query":{"fql":["spells.byPair(x, null).eventSource()"]},"arguments":{"x":"fire"}}`, mustMatch(t, "byPair", "fire", nil)},
		{`{"query":{"fql":["spells.everything().eventSource()"]}}`, mustMatch(t, "everything")},
	} {
		got, err := parseEventSource([]byte(c.body), fqlSchema)
		if err != nil {
			t.Errorf("%s: %v", c.body, err)
			continue
		}
		if got.String() != c.want.String() {
			t.Errorf("%s: got %v, want %v", c.body, got, c.want)
		}
	}
}

// TestParseEventSourceRefusals: anything else is refused, as a query this
// server does not answer, or as an index the collection does not have.
func TestParseEventSourceRefusals(t *testing.T) {
	for _, c := range []struct {
		body string
		want error
	}{
		{`not json`, errQuery},
		{`{}`, errQuery},
		{`{"query":{"fql":["spells.all()"]}}`, errQuery},
		{`{"query":{"fql":["spells.all().eventSource().map(x => x)"]}}`, errQuery},
		{`{"query":{"fql":["spells.where(.element == \"fire\").eventSource()"]}}`, errQuery},
		{`{"query":{"fql":["spells.all().where(.a == 1).eventSource()"]}}`, errQuery},
		{`{"query":{"fql":["spells.all(1).eventSource()"]}}`, errQuery},
		{`{"query":{"fql":["spells.byId().eventSource()"]}}`, errQuery},
		{`{"query":{"fql":["spells.byId(\"\").eventSource()"]}}`, errQuery},
		{`{"query":{"fql":["spells.byId(1.5).eventSource()"]}}`, errQuery},
		{`{"query":{"fql":["spells.byElement(\"#{x}\").eventSource()"]}}`, errQuery},
		{`{"query":{"fql":["spells.byElement(\"fire).eventSource()"]}}`, errQuery},
		{`{"query":{"fql":["spells.byElement(fire).eventSource()"]}}`, errQuery},
		{`{"query":{"fql":["spells.byElement(",{"value":{"@object":{"a":1}}},").eventSource()"]}}`, errQuery},
		{`{"query":{"fql":["spells.byElement(",{"value":[1]},").eventSource()"]}}`, errQuery},
		{`{"query":{"fql":["spells.byElement(\"a\" \"b\").eventSource()"]}}`, errQuery},
		{`{"query":{"fql":[{"value":{"@ref":{"id":"1","coll":{"@mod":"spells"}}}},".eventSource()"]}}`, errQuery},
		{`{"query":{"fql":["c.all().eventSource()"]},"arguments":{"c":"spells"}}`, errQuery},
		{`{"query":{"fql":["spells.all().eventSource() extra"]}}`, errQuery},
		{`{"query":{"fql":[{"fql":[{"fql":[{"fql":[{"fql":[{"fql":[{"fql":[{"fql":[{"fql":["spells"]}]}]}]}]}]}]}]}]},".all().eventSource()"]}}`, errQuery},
		// Indexes are the schema's, on the collection named.
		{`{"query":{"fql":["spells.nope(\"x\").eventSource()"]}}`, errNoIndex},
		{`{"query":{"fql":["potions.byElement(\"fire\").eventSource()"]}}`, errNoIndex},
		{`{"query":{"fql":["spells.first().eventSource()"]}}`, errNoIndex},
	} {
		got, err := parseEventSource([]byte(c.body), fqlSchema)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, %v; want %v", c.body, got, err, c.want)
		}
	}
}
