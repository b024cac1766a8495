package broker

import (
	"errors"
	"testing"

	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/internal/entrystore"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

func TestSetOf(t *testing.T) {
	cat, err := entrystore.NewCatalog(index.Schema{
		Collections: []string{"spells"},
		Indexes: []index.Definition{
			{Name: "by_element", Collection: "spells", Terms: []string{"element"}},
			{Name: "all", Collection: "spells"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := setOf(cat, subscription.Document(txlog.Ref{Collection: "spells", ID: "1"})); !errors.Is(err, subscription.ErrInvalidTarget) {
		t.Errorf("a document's set: %v", err)
	}
	if k, err := setOf(cat, subscription.Collection("spells")); err != nil || k.Kind() != entrystore.SetCollection {
		t.Errorf("Collection: %v %v", k, err)
	}
	if _, err := setOf(cat, subscription.Collection("nope")); !errors.Is(err, subscription.ErrInvalidTarget) || !errors.Is(err, index.ErrUnknownCollection) {
		t.Errorf("unknown collection: %v", err)
	}
	match := func(name string, terms ...any) subscription.Target {
		t.Helper()
		tg, err := subscription.Match(name, terms...)
		if err != nil {
			t.Fatal(err)
		}
		return tg
	}
	fireValue, _ := index.ValueOf("fire")
	k1, err1 := setOf(cat, match("by_element", "fire"))
	k2, err2 := setOf(cat, match("by_element", fireValue))
	if err1 != nil || err2 != nil || k1 != k2 || k1.Kind() != entrystore.SetIndex {
		t.Errorf("Match with a Go value and with an index.Value: %v %v / %v %v", k1, err1, k2, err2)
	}
	if k, _ := setOf(cat, match("by_element", 1)); k == k1 {
		t.Error("fire and 1 have the same set key")
	}
	if k, _ := setOf(cat, match("by_element", 1)); k != must(setOf(cat, match("by_element", 1.0))) {
		t.Error("1 and 1.0 have different set keys")
	}
	if kw, _ := setOf(cat, match("by_element", "water")); kw == k1 {
		t.Error("fire and water have the same set key")
	}
	if _, err := setOf(cat, match("all")); err != nil {
		t.Errorf("term-less index: %v", err)
	}
	if _, err := setOf(cat, match("by_element")); !errors.Is(err, subscription.ErrInvalidTarget) || !errors.Is(err, index.ErrTermCount) {
		t.Errorf("missing term: %v", err)
	}
	if _, err := setOf(cat, match("nope", 1)); !errors.Is(err, subscription.ErrInvalidTarget) || !errors.Is(err, index.ErrUnknownIndex) {
		t.Errorf("unknown index: %v", err)
	}
}
