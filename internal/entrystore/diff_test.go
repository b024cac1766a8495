package entrystore

import (
	"errors"
	"strings"
	"testing"

	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/txlog"
)

// changeStrings renders a diff's changes as "action set values".
func changeStrings(d *Diff) []string {
	var out []string
	for _, c := range d.Changes() {
		out = append(out, c.Action.String()+" "+c.Set.String()+" "+c.Entry.Values.String())
	}
	return out
}

func TestDiff(t *testing.T) {
	c := mustCatalog(t, spellsSchema())
	ref := txlog.Ref{Collection: "spells", ID: "7"}
	const doc = `{"name":"Fireball","element":"fire","stats":{"level":3}}`
	cases := []struct {
		name          string
		before, after string // "" for none
		want          []string
	}{
		{"create", "", doc, []string{
			`add Collection(spells) []`,
			`add Match(spells_by_element, "fire") [3]`,
			`add Match(all_spells) ["Fireball"]`,
		}},
		{"delete", doc, "", []string{
			`remove Collection(spells) []`,
			`remove Match(spells_by_element, "fire") [3]`,
			`remove Match(all_spells) ["Fireball"]`,
		}},
		{"values change, same terms: remove then add", doc, `{"name":"Fireball","element":"fire","stats":{"level":4}}`, []string{
			`remove Match(spells_by_element, "fire") [3]`,
			`add Match(spells_by_element, "fire") [4]`,
		}},
		{"terms change: leave one set, enter another", doc, `{"name":"Fireball","element":"water","stats":{"level":3}}`, []string{
			`remove Match(spells_by_element, "fire") [3]`,
			`add Match(spells_by_element, "water") [3]`,
		}},
		{"unchanged entries yield nothing", doc, `{"stats":{"level":3.0,"mana":9},"element":"fire","name":"Fireball","extra":[1]}`, nil},
		{"identical images", doc, doc, nil},
		{"array grows: only the new element enters", `{"element":["fire"]}`, `{"element":["fire","air"]}`, []string{
			`add Match(spells_by_element, "air") [null]`,
		}},
		{"field removed: term becomes null", doc, `{"name":"Fireball","stats":{"level":3}}`, []string{
			`remove Match(spells_by_element, "fire") [3]`,
			`add Match(spells_by_element, null) [3]`,
		}},
		{"empty array leaves the index", `{"element":"fire"}`, `{"element":[]}`, []string{
			`remove Match(spells_by_element, "fire") [null]`,
		}},
	}
	var d Diff
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var before, after []byte
			if tc.before != "" {
				before = []byte(tc.before)
			}
			if tc.after != "" {
				after = []byte(tc.after)
			}
			if err := c.Diff(&d, ref, before, after); err != nil {
				t.Fatal(err)
			}
			got, want := strings.Join(changeStrings(&d), "\n"), strings.Join(tc.want, "\n")
			if got != want {
				t.Errorf("changes:\n%s\nwant:\n%s", got, want)
			}
			for _, ch := range d.Changes() {
				if ch.Entry.Ref != ref {
					t.Errorf("change ref = %v, want %v", ch.Entry.Ref, ref)
				}
			}
			if d.Ref() != ref {
				t.Errorf("Ref = %v", d.Ref())
			}
		})
	}
}

// TestDiffSetKeys checks that a change's set key is the one MatchSet and
// CollectionSet give for the same set.
func TestDiffSetKeys(t *testing.T) {
	c := mustCatalog(t, spellsSchema())
	var d Diff
	if err := c.Diff(&d, txlog.Ref{Collection: "spells", ID: "1"}, nil, []byte(`{"element":1.0,"name":"x"}`)); err != nil {
		t.Fatal(err)
	}
	coll, _ := c.CollectionSet("spells")
	one, _ := c.MatchSet("spells_by_element", mustParse(t, "1"))
	all, _ := c.MatchSet("all_spells")
	ch := d.Changes()
	if len(ch) != 3 || ch[0].Set != coll || ch[1].Set != one || ch[2].Set != all {
		t.Fatalf("changes %v, want sets %v %v %v", changeStrings(&d), coll, one, all)
	}
	if ch[1].Set.Hash() != one.Hash() {
		t.Error("equal keys with different hashes")
	}
}

func TestDiffErrors(t *testing.T) {
	c := mustCatalog(t, spellsSchema())
	var d Diff
	ref := txlog.Ref{Collection: "spells", ID: "1"}
	if err := c.Diff(&d, ref, nil, []byte(`{"element":"fire"}`)); err != nil || len(d.Changes()) == 0 {
		t.Fatalf("setup: %v", err)
	}
	cases := []struct {
		ref           txlog.Ref
		before, after string
		want          error
	}{
		{txlog.Ref{Collection: "nope", ID: "1"}, "", `{}`, index.ErrUnknownCollection},
		{ref, "", `{"element":`, index.ErrInvalidJSON},
		{ref, `{"element":`, `{}`, index.ErrInvalidJSON},
		{ref, `{}`, `"text"`, ErrNotObject},
		{ref, `{}`, `{"element":1e-9999999999}`, index.ErrNumberRange},
	}
	for _, tc := range cases {
		var before []byte
		if tc.before != "" {
			before = []byte(tc.before)
		}
		err := c.Diff(&d, tc.ref, before, []byte(tc.after))
		if !errors.Is(err, tc.want) {
			t.Errorf("Diff(%s → %s) = %v, want %v", tc.before, tc.after, err, tc.want)
		}
		if len(d.Changes()) != 0 {
			t.Errorf("Diff(%s → %s) failed but left %d changes", tc.before, tc.after, len(d.Changes()))
		}
	}
	if err := c.Diff(&d, ref, nil, nil); err != nil || len(d.Changes()) != 0 {
		t.Errorf("no images: %v, %d changes", err, len(d.Changes()))
	}
}

// TestDiffReuse checks that changes kept from one diff survive the Diff's
// reuse.
func TestDiffReuse(t *testing.T) {
	c := mustCatalog(t, spellsSchema())
	var d Diff
	ref := txlog.Ref{Collection: "spells", ID: "1"}
	if err := c.Diff(&d, ref, nil, []byte(`{"element":"fire","name":"a"}`)); err != nil {
		t.Fatal(err)
	}
	kept := append([]Change(nil), d.Changes()...)
	want := changeStrings(&d)
	if err := c.Diff(&d, ref, nil, []byte(`{"element":"water","name":"b"}`)); err != nil {
		t.Fatal(err)
	}
	for i, ch := range kept {
		if got := ch.Action.String() + " " + ch.Set.String() + " " + ch.Entry.Values.String(); got != want[i] {
			t.Errorf("kept change %d became %s, was %s", i, got, want[i])
		}
	}
}

// TestDiffAllocs checks the hot path's allocation budget: one allocation
// for a write that changes membership, none for one that does not.
func TestDiffAllocs(t *testing.T) {
	c := mustCatalog(t, spellsSchema())
	var d Diff
	ref := txlog.Ref{Collection: "spells", ID: "1"}
	before := []byte(`{"name":"Fireball","element":"fire","stats":{"level":3,"mana":10},"tags":["a","b"]}`)
	after := []byte(`{"name":"Fireball","element":"fire","stats":{"level":4,"mana":10},"tags":["a","b"]}`)
	same := []byte(`{"name":"Fireball","element":"fire","stats":{"level":3,"mana":11},"tags":["a","b"]}`)
	_ = c.Diff(&d, ref, before, after) // grow the buffers
	if n := testing.AllocsPerRun(100, func() { _ = c.Diff(&d, ref, before, after) }); n > 1 {
		t.Errorf("update changing an index: %v allocations, want ≤ 1", n)
	}
	if n := testing.AllocsPerRun(100, func() { _ = c.Diff(&d, ref, before, same) }); n > 0 {
		t.Errorf("update changing no index: %v allocations, want 0", n)
	}
}
