package subscription

import (
	"fmt"

	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/txlog"
)

// Kind says what a Target follows.
type Kind uint8

// The kinds of target.
const (
	KindDocument   Kind = iota + 1 // one document
	KindCollection                 // the documents of a collection
	KindIndex                      // an index matched on all its terms, or a term-less index
)

// Target is what a subscription follows: a document, or a set. Make one
// with Document, Collection or Match.
type Target struct {
	Kind       Kind
	Ref        txlog.Ref     // KindDocument
	Collection string        // KindCollection
	Index      string        // KindIndex
	Terms      []index.Value // KindIndex: one per term of the index
}

// Document follows one document: version events (create, update, delete).
func Document(ref txlog.Ref) Target { return Target{Kind: KindDocument, Ref: ref} }

// Collection follows the set of a collection's documents: set events.
func Collection(name string) Target { return Target{Kind: KindCollection, Collection: name} }

// Match follows an index matched on terms (Go values that index.ValueOf
// accepts, or index.Value), or a term-less index when none are given.
func Match(indexName string, terms ...any) (Target, error) {
	t := Target{Kind: KindIndex, Index: indexName}
	for i, term := range terms {
		v, ok := term.(index.Value)
		if !ok {
			var err error
			if v, err = index.ValueOf(term); err != nil {
				return Target{}, fmt.Errorf("%w: term %d: %v", ErrInvalidTarget, i, err)
			}
		}
		t.Terms = append(t.Terms, v)
	}
	return t, nil
}

// IsSet reports whether the target is a set (a collection or an index).
func (t Target) IsSet() bool { return t.Kind == KindCollection || t.Kind == KindIndex }

// String describes the target as Fauna would write it.
func (t Target) String() string {
	switch t.Kind {
	case KindDocument:
		return fmt.Sprintf("Ref(Collection(%q), %q)", t.Ref.Collection, t.Ref.ID)
	case KindCollection:
		return fmt.Sprintf("Documents(Collection(%q))", t.Collection)
	case KindIndex:
		s := fmt.Sprintf("Match(Index(%q)", t.Index)
		for _, v := range t.Terms {
			s += ", " + v.String()
		}
		return s + ")"
	}
	return "Target(invalid)"
}
